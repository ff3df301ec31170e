// Run by hub/hubd TestAzureNodeSDKModules, with the environment of
// check.js (runNodeCheck). Outside check of module identities (issue 19,
// item 5): the official Node SDKs create a module, connect it with
// ModuleClient over MQTT, update its twin both ways, call a method on it,
// query devices.modules, and delete it and its device.
const iothub = require('azure-iothub');
const { ModuleClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const cs = process.env.IOTHUB_CONNECTION_STRING;
const mqttHost = process.env.MQTT_HOST; // localhost:PORT
const fail = (m) => { console.error('FAIL', m); process.exit(1); };
const within = (p, ms, what) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error('timed out: ' + what)), ms))]);

(async () => {
  const registry = iothub.Registry.fromConnectionString(cs);
  const id = 'node-mod-' + Date.now(), mid = 'sensor.1';
  try { await registry.addModule({ deviceId: id, moduleId: mid }); fail('module of a missing device created'); } catch (e) {
    if (e.name !== 'DeviceNotFoundError') fail('module without device: ' + e.name + ' ' + e.message);
  }
  await registry.create({ deviceId: id });
  await registry.addModule({ deviceId: id, moduleId: mid });
  await registry.addModule({ deviceId: id, moduleId: 'other' });
  const mod = (await registry.getModule(id, mid)).responseBody;
  const key = mod.authentication.symmetricKey.primaryKey;
  if (!key || mod.deviceId !== id || mod.moduleId !== mid || !mod.etag) fail('getModule ' + JSON.stringify(mod));
  try { await registry.addModule({ deviceId: id, moduleId: mid }); fail('duplicate module accepted'); } catch (e) {
    // azure-iothub maps every 409 to DeviceAlreadyExistsError; the code
    // is in the body.
    if (e.name !== 'DeviceAlreadyExistsError' || !/ModuleAlreadyExistsOnDevice/.test(e.responseBody)) fail('duplicate module: ' + e.name + ' ' + e.responseBody);
  }
  const list = (await registry.getModulesOnDevice(id)).responseBody;
  if (list.map(m => m.moduleId).join(',') !== 'other,' + mid) fail('getModulesOnDevice ' + JSON.stringify(list));
  const devs = (await registry.list()).responseBody;
  if (devs.some(d => d.deviceId.includes('/'))) fail('device list holds modules ' + JSON.stringify(devs.map(d => d.deviceId)));
  console.log('module registry ok', id, mid);

  const client = ModuleClient.fromConnectionString(`HostName=${mqttHost};DeviceId=${id};ModuleId=${mid};SharedAccessKey=${key}`, Mqtt);
  await client.open();
  client.onMethod('reset', (req, res) => res.send(200, { reset: true, got: req.payload }, () => {}));
  const twin = await client.getTwin();
  const desired = new Promise(resolve => twin.on('properties.desired', d => { if (d.rate) resolve(d); }));
  await new Promise((res, rej) => twin.properties.reported.update({ firmware: '1.2' }, e => e ? rej(e) : res()));
  console.log('module client connected, twin GET and reported patch ok');
  // Presence is recorded on the module (asynchronously: poll, 10 s at most).
  let state;
  for (const end = Date.now() + 10000; Date.now() < end; await new Promise(r => setTimeout(r, 50))) {
    state = (await registry.getModule(id, mid)).responseBody.connectionState;
    if (state === 'Connected') break;
  }
  if (state !== 'Connected') fail('module connectionState ' + state);
  if ((await registry.get(id)).responseBody.connectionState !== 'Disconnected') fail('the module connected its device');
  console.log('module presence ok');

  const mt = (await registry.getModuleTwin(id, mid)).responseBody;
  if (mt.moduleId !== mid || mt.deviceId !== id || mt.properties.reported.firmware !== '1.2') fail('module twin ' + JSON.stringify(mt));
  await registry.updateModuleTwin(id, mid, { tags: { role: 'probe' }, properties: { desired: { rate: 5 } } }, mt.etag);
  const d = await within(desired, 10000, 'desired notification');
  if (d.rate !== 5 || typeof d.$version !== 'number') fail('desired notification ' + JSON.stringify(d));
  console.log('module twin update + desired notification ok', JSON.stringify(d));

  const svc = iothub.Client.fromConnectionString(cs);
  const r = await svc.invokeDeviceMethod(id, mid, { methodName: 'reset', payload: { n: 1 }, responseTimeoutInSeconds: 15 });
  if (r.result.status !== 200 || !r.result.payload.reset || r.result.payload.got.n !== 1) fail('module method ' + JSON.stringify(r.result));
  console.log('module method ok', JSON.stringify(r.result));

  const q = registry.createQuery(`SELECT * FROM devices.modules WHERE deviceId = '${id}' AND tags.role = 'probe'`);
  const qr = await q.next();
  if (qr.result.length !== 1 || qr.result[0].moduleId !== mid || qr.result[0].deviceId !== id) fail('devices.modules ' + JSON.stringify(qr.result));
  const dq = await registry.createQuery(`SELECT * FROM devices WHERE deviceId = '${id}'`).next();
  if (dq.result.length !== 1 || dq.result[0].moduleId !== undefined) fail('devices query ' + JSON.stringify(dq.result));
  console.log('devices.modules query ok');

  await client.close();
  await registry.removeModule(id, mid);
  try { await registry.getModule(id, mid); fail('removed module found'); } catch (e) {
    if (!/ModuleNotFound/.test(e.responseBody)) fail('removed module: ' + e.name + ' ' + e.responseBody);
  }
  await registry.delete(id);
  try { await registry.getModule(id, 'other'); fail('module of a deleted device found'); } catch (e) {
    if (e.name !== 'DeviceNotFoundError') fail('module of deleted device: ' + e.name + ' ' + e.responseBody);
  }
  const left = await registry.createQuery(`SELECT * FROM devices.modules WHERE deviceId = '${id}'`).next();
  if (left.result.length !== 0) fail('modules outlived their device ' + JSON.stringify(left.result));
  console.log('removeModule + device delete removes its modules ok');
  process.exit(0);
})().catch(e => fail(e.stack || e));
