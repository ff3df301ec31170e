// devices modules: a device's module identities (issue 19, item 5).

package main

import (
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/iotjobs/iotjobs/hub"
)

// modulesListCmd is "iotjobs devices modules ID": the module identities of
// one device, as GET /devices/{id}/modules lists them.
func modulesListCmd() *cli.Command {
	return &cli.Command{Name: "modules", ArgsUsage: "ID", Usage: "list a device's module identities (keys hidden unless --show-keys)",
		Description: "Examples:\n   iotjobs devices modules gateway-1\n   iotjobs devices modules gateway-1 -o json --show-keys",
		Flags:       append(listFlags(), showKeysFlag()),
		Action:      listAction(deviceArg, runModulesList)}
}

// runModulesList lists the modules of device id.
func runModulesList(c *cli.Context, h hub.Client, format, id string) error {
	mh, ok := h.(hub.Modules)
	if !ok {
		return fmt.Errorf("devices modules: this hub (%T) has no module identities", h)
	}
	ms, err := mh.ListModules(c.Context, id)
	if err != nil {
		return err
	}
	if !c.Bool("show-keys") && len(ms) > 0 {
		for _, m := range ms {
			m.Authentication.SymmetricKey = hub.SymmetricKey{}
		}
		fmt.Fprintln(c.App.ErrWriter, "iotjobs: SAS keys hidden; --show-keys prints them")
	}
	return printList(c, format, "modules", ms, moduleColumns(c.Bool("show-keys")))
}

// moduleColumns are devices modules' table columns; the keys only when
// --show-keys asked for them.
func moduleColumns(showKeys bool) []column[*hub.Module] {
	cols := []column[*hub.Module]{
		{name: "module id", cell: func(m *hub.Module) string { return m.ModuleID }},
		{name: "connection", cell: func(m *hub.Module) string { return m.ConnectionState }},
		{name: "last activity", cell: func(m *hub.Module) string { return cellTime(&m.LastActivityTime) }},
		{name: "managed by", wide: true, cell: func(m *hub.Module) string { return m.ManagedBy }},
		{name: "auth", wide: true, cell: func(m *hub.Module) string { return m.Authentication.Type }},
		{name: "etag", wide: true, cell: func(m *hub.Module) string { return m.ETag }},
		{name: "c2d messages", wide: true, cell: func(m *hub.Module) string { return strconv.Itoa(m.CloudToDeviceMessageCount) }},
		{name: "generation id", wide: true, cell: func(m *hub.Module) string { return m.GenerationID }},
	}
	if showKeys {
		cols = append(cols,
			column[*hub.Module]{name: "primary key", cell: func(m *hub.Module) string { return m.Authentication.SymmetricKey.PrimaryKey }},
			column[*hub.Module]{name: "secondary key", cell: func(m *hub.Module) string { return m.Authentication.SymmetricKey.SecondaryKey }})
	}
	return cols
}
