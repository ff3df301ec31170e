// Run by hub/hubd TestAzureNodeSDKX509 with the environment of check.js plus
// X509_DIR, where the Go test wrote PEM files: self.pem/self-key.pem (a
// self-signed device certificate, CN self), ca-dev.pem/ca-dev-key.pem (CN
// ca-dev, signed by a CA the test registered with the hub) and
// stranger.pem/stranger-key.pem (self-signed, registered nowhere).
// Outside check of X.509 devices: the official SDKs register a self-signed
// and a CA-authenticated device, connect each with its certificate
// (x509=true in the connection string, setOptions({cert, key})), call and
// answer a direct method, and see a wrong certificate refused.
const fs = require('fs');
const path = require('path');
const { X509Certificate } = require('crypto');
const iothub = require('azure-iothub');
const { Client: DeviceClient } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const cs = process.env.IOTHUB_CONNECTION_STRING;
const mqttHost = process.env.MQTT_HOST;
const httpsHost = process.env.HTTPS_HOST;
const dir = process.env.X509_DIR;
const read = (f) => fs.readFileSync(path.join(dir, f), 'utf8');
const fail = (m) => { console.error('FAIL', m); process.exit(1); };

async function connectAndCall(id, cert, key, transport, host) {
  const device = DeviceClient.fromConnectionString(`HostName=${host};DeviceId=${id};x509=true`, transport);
  device.setOptions({ cert, key });
  await device.open();
  device.onDeviceMethod('whoami', (req, res) => res.send(200, { id, got: req.payload }, () => {}));
  const svc = iothub.Client.fromConnectionString(cs);
  // The method subscription reaches the hub after open resolves: retry
  // while the device is not yet subscribed (404).
  let r;
  for (let i = 0; ; i++) {
    try { r = await svc.invokeDeviceMethod(id, { methodName: 'whoami', payload: { n: 1 }, responseTimeoutInSeconds: 10 }); break; } catch (e) {
      if (i >= 50) throw e;
      await new Promise(res => setTimeout(res, 100));
    }
  }
  if (r.result.status !== 200 || r.result.payload.id !== id || r.result.payload.got.n !== 1) fail('invoke ' + id + ': ' + JSON.stringify(r.result));
  console.log('direct method ok over', transport.name, id, JSON.stringify(r.result));
  await device.close();
}

async function refused(id, cert, key, what) {
  const device = DeviceClient.fromConnectionString(`HostName=${mqttHost};DeviceId=${id};x509=true`, Mqtt);
  device.setOptions({ cert, key });
  try { await device.open(); } catch (e) {
    console.log('refused as it should be:', what, '->', e.name);
    return;
  }
  await device.close();
  fail(what + ' was accepted');
}

(async () => {
  const registry = iothub.Registry.fromConnectionString(cs);
  const self = { cert: read('self.pem'), key: read('self-key.pem') };
  const caDev = { cert: read('ca-dev.pem'), key: read('ca-dev-key.pem') };
  const stranger = { cert: read('stranger.pem'), key: read('stranger-key.pem') };

  // As the SDK's own e2e tests create a self-signed device: thumbprints
  // only, the type inferred (here the SHA-256 form, without colons).
  const tp = new X509Certificate(self.cert).fingerprint256.replace(/:/g, '');
  await registry.create({ deviceId: 'self', authentication: { x509Thumbprint: { primaryThumbprint: tp, secondaryThumbprint: null } } });
  const sd = (await registry.get('self')).responseBody;
  if (sd.authentication.type !== 'selfSigned' || sd.authentication.x509Thumbprint.primaryThumbprint !== tp.toUpperCase() ||
      sd.authentication.symmetricKey.primaryKey !== null) fail('self-signed device: ' + JSON.stringify(sd.authentication));
  await registry.create({ deviceId: 'ca-dev', authentication: { type: 'certificateAuthority' } });
  const cd = (await registry.get('ca-dev')).responseBody;
  if (cd.authentication.type !== 'certificateAuthority') fail('CA device: ' + JSON.stringify(cd.authentication));
  const tw = (await registry.getTwin('self')).responseBody;
  if (tw.authenticationType !== 'selfSigned' || tw.x509Thumbprint.primaryThumbprint !== tp.toUpperCase()) fail('twin: ' + JSON.stringify(tw));
  console.log('registry ok: selfSigned and certificateAuthority devices');

  await connectAndCall('self', self.cert, self.key, Mqtt, mqttHost);
  await connectAndCall('ca-dev', caDev.cert, caDev.key, Mqtt, mqttHost);
  await connectAndCall('ca-dev', caDev.cert, caDev.key, MqttWs, httpsHost);

  await refused('self', stranger.cert, stranger.key, 'a self-signed device with a certificate of another thumbprint');
  await refused('ca-dev', stranger.cert, stranger.key, 'a CA device with a certificate of no registered CA');
  await refused('self', caDev.cert, caDev.key, 'a self-signed device with another device\'s CA-signed certificate');
  console.log('X.509 check passed');
  process.exit(0);
})().catch(e => fail(e.stack || e));
