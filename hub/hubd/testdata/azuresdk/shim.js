// Dev/test-only preload (azure-contract.md §5.4): lets the Azure service SDK
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
