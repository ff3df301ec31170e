package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/iotjobs/iotjobs/hub"
	"github.com/iotjobs/iotjobs/hub/mqttproto"
)

// checkMethod validates a method request and fills Azure's defaults.
func checkMethod(req *hub.MethodRequest) (*hub.MethodRequest, error) {
	if req == nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "method request is missing")
	}
	r := *req
	if err := mqttproto.ValidMethodName(r.MethodName); err != nil {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "methodName: %v", err)
	}
	if err := hub.CheckMethodRequest(&r); err != nil {
		return nil, err
	}
	if r.ResponseTimeoutInSeconds == 0 {
		r.ResponseTimeoutInSeconds = hub.DefaultResponseTimeout
	}
	if len(r.Payload) == 0 {
		r.Payload = json.RawMessage("null")
	}
	if !json.Valid(r.Payload) {
		return nil, hub.Errorf(hub.CodeArgumentInvalid, "method payload is not valid JSON")
	}
	return &r, nil
}

// InvokeMethod implements hub.Client.
func (e *Engine) InvokeMethod(ctx context.Context, id string, req *hub.MethodRequest) (*hub.MethodResponse, error) {
	r, err := checkMethod(req)
	if err != nil {
		return nil, err
	}
	resp, err := e.invokeChecked(ctx, id, r)
	if ent := e.entry(ctx, hub.AuditMethodInvoke, id); ent != nil {
		ent.Result = hub.ErrorCode(err)
		if err == nil {
			ent.Result = strconv.Itoa(resp.Status)
		}
		e.appendAudit(ctx, ent)
	}
	return resp, err
}

// invokeChecked is InvokeMethod after the request's checks.
func (e *Engine) invokeChecked(ctx context.Context, id string, r *hub.MethodRequest) (*hub.MethodResponse, error) {
	d, err := e.store.GetDevice(ctx, id)
	if err != nil {
		return nil, storeErr(err, hub.CodeDeviceNotFound, "device", id)
	}
	if d.Status == hub.StatusDisabled {
		return nil, notOnline(0)
	}
	return e.invoke(ctx, id, r, nil)
}

// invoke calls a validated method on a device: it waits up to the connect
// timeout for the device to be online, then up to the response timeout
// for its answer, both on the engine's clock. sending, when not nil, runs
// just before the request goes out, once the device is online, and again
// before each later try; its error stops the call (a job stores "running"
// there, so a record still "pending" after a crash means the device was
// never asked; among replicas it checks that the job's lease holds).
//
// A request the bus could not send because it went down (hub.ErrNotSent)
// never reached the device: the device waits for the bus as an offline
// device does, within the same connect timeout, and is asked then.
func (e *Engine) invoke(ctx context.Context, id string, r *hub.MethodRequest, sending func() error) (*hub.MethodResponse, error) {
	connect := time.Duration(r.ConnectTimeoutInSeconds) * time.Second
	cctx, cancelConnect := ended, func() {} // "online now?"
	if connect > 0 {
		cctx, cancelConnect = e.clock.WithTimeout(ctx, connect)
	}
	defer cancelConnect()
	for {
		resp, err := e.invokeOnce(ctx, cctx, id, r, connect, sending)
		if !errors.Is(err, hub.ErrNotSent) || ctx.Err() != nil {
			return resp, err
		}
	}
}

// invokeOnce is one try of invoke: cctx ends with the connect timeout.
func (e *Engine) invokeOnce(ctx, cctx context.Context, id string, r *hub.MethodRequest, connect time.Duration, sending func() error) (*hub.MethodResponse, error) {
	if connect > 0 || sending != nil {
		err := e.bus.WaitOnline(cctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, notOnline(connect)
		}
	}
	if sending != nil {
		if err := sending(); err != nil {
			return nil, err
		}
	}
	rctx, cancel := e.clock.WithTimeout(ctx, time.Duration(r.ResponseTimeoutInSeconds)*time.Second)
	defer cancel()
	start := e.clock.Now()
	resp, err := e.bus.InvokeMethod(rctx, id, r.MethodName, r.Payload)
	if e.Metrics != nil {
		outcome := "answered"
		if err != nil {
			outcome = hub.ErrorCode(err)
			if rctx.Err() != nil && ctx.Err() == nil {
				outcome = hub.CodeGatewayTimeout
			}
		}
		e.Metrics.MethodCall(outcome, e.clock.Since(start))
	}
	switch {
	case err == nil:
		return resp, nil
	case errors.Is(err, hub.ErrNotSent):
		return nil, err
	case errors.Is(err, hub.ErrDeviceNotOnline):
		return nil, notOnline(connect)
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case rctx.Err() != nil:
		return nil, hub.Errorf(hub.CodeGatewayTimeout, "Timed out waiting for the response from device.")
	}
	return nil, err
}

// ended is a context that has ended: WaitOnline with it asks whether a
// device is online now, without waiting.
var ended = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func notOnline(connect time.Duration) error {
	s := int(connect.Seconds())
	return hub.Errorf(hub.CodeDeviceNotOnline, "Timed out waiting for device to connect. (connect timeout %s)",
		fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60))
}
