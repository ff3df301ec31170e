package memstore_test

import (
	"testing"

	"github.com/iotjobs/iotjobs/hub/store"
	"github.com/iotjobs/iotjobs/hub/store/memstore"
	"github.com/iotjobs/iotjobs/hub/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memstore.New() })
}

// The differential query test (storetest.RunQueries) would compare this
// store's answers with the reference evaluator over this store: the same
// code, so it is not run here.
