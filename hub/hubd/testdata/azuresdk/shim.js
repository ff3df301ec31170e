// Dev/test-only preload (azure-contract.md §5.4): lets the Azure SDKs
// honour HostName=host:port, so the hub under test can use an ephemeral port.
const https = require('https'); const orig = https.request;
https.request = function (o, cb) {
  if (o && typeof o === 'object' && !(o instanceof URL) && typeof o.host === 'string'
      && /^[^:\[\]]+:\d+$/.test(o.host) && !o.port) {
    const i = o.host.lastIndexOf(':');
    o = Object.assign({}, o, { host: o.host.slice(0, i), port: Number(o.host.slice(i + 1)) });
  }
  return orig.call(this, o, cb);
};
// The device SDK's MqttWs dials wss://{HostName}:443/$iothub/websocket;
// with HostName=host:port that is wss://host:port:443/..., which mqtt.js
// parses as port 443. Drop the ":443" so it dials the hub's HTTPS port.
const url = require('url'); const parse = url.parse;
url.parse = function (s, ...rest) {
  if (typeof s === 'string') s = s.replace(/^(wss:\/\/[^:\/\[\]]+:\d+):443\//, '$1/');
  return parse.call(this, s, ...rest);
};
