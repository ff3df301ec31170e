// Run by hub/hubd TestAzureNodeSDK with IOTHUB_CONNECTION_STRING, MQTT_HOST,
// HTTPS_HOST, NODE_EXTRA_CA_CERTS (the hub CA) and NODE_OPTIONS="--require shim.js"
// (the SDKs cannot take a port in HostName; azure-contract.md §5.4).
// Outside check: the official Azure IoT Node SDKs against an iotjobs hub.
const iothub = require('azure-iothub');
const { Client: DeviceClient, Message } = require('azure-iot-device');
const { Mqtt, MqttWs } = require('azure-iot-device-mqtt');
const cs = process.env.IOTHUB_CONNECTION_STRING;
const mqttHost = process.env.MQTT_HOST; // localhost:PORT
const httpsHost = process.env.HTTPS_HOST; // localhost:PORT, MQTT over WebSocket at /$iothub/websocket
const host = cs.match(/HostName=([^;]+)/)[1];
const sleep = (ms) => new Promise(r => setTimeout(r, ms));
const fail = (m) => { console.error('FAIL', m); process.exit(1); };

(async () => {
  const registry = iothub.Registry.fromConnectionString(cs);
  const id = 'node-' + Date.now();
  await registry.create({ deviceId: id });
  const dev = (await registry.get(id)).responseBody;
  const key = dev.authentication.symmetricKey.primaryKey;
  if (!key) fail('no generated key');
  try { await registry.create({ deviceId: id }); fail('duplicate create accepted'); } catch (e) {
    if (e.name !== 'DeviceAlreadyExistsError') fail('duplicate: ' + e.name + ' ' + e.message);
  }
  console.log('registry ok', id);

  // IoT Edge: the hub generates an edge device's scope; a leaf device is
  // created under it by deviceScope; an edge device nests under it by
  // parentScopes.
  const gw = id + '-gw';
  await registry.create({ deviceId: gw, capabilities: { iotEdge: true } });
  const gwDev = (await registry.get(gw)).responseBody;
  if (gwDev.deviceScope !== `ms-azure-iot-edge://${gw}-${gwDev.generationId}`) fail('edge scope ' + gwDev.deviceScope);
  await registry.create({ deviceId: id + '-child', deviceScope: gwDev.deviceScope });
  const child = (await registry.get(id + '-child')).responseBody;
  if (child.deviceScope !== gwDev.deviceScope || (child.parentScopes || [])[0] !== gwDev.deviceScope) fail('child scopes ' + JSON.stringify(child));
  await registry.create({ deviceId: gw + '2', capabilities: { iotEdge: true }, parentScopes: [gwDev.deviceScope] });
  const nested = (await registry.getTwin(gw + '2')).responseBody;
  if (!nested.deviceScope.startsWith(`ms-azure-iot-edge://${gw}2-`) || nested.parentScopes[0] !== gwDev.deviceScope || !nested.capabilities.iotEdge) fail('nested edge twin ' + JSON.stringify(nested));
  try { await registry.create({ deviceId: id + '-orphan', deviceScope: 'ms-azure-iot-edge://nope-1' }); fail('orphan accepted'); } catch (e) {
    if (e.responseBody === undefined && !/does not exist/.test(e.message)) fail('orphan: ' + e.message);
  }
  const eq = await registry.createQuery(`SELECT deviceId FROM devices WHERE deviceScope = '${gwDev.deviceScope}'`).nextAsTwin();
  // The gateway itself and its leaf; the nested edge device has its own scope.
  if (eq.result.length !== 2) fail('query by deviceScope: ' + JSON.stringify(eq.result));
  for (const d of [id + '-child', gw + '2', gw]) await registry.delete(d);
  console.log('IoT Edge scopes ok: generated', gwDev.deviceScope, 'child and nested edge device under it');

  const device = DeviceClient.fromConnectionString(`HostName=${mqttHost};DeviceId=${id};SharedAccessKey=${key}`, Mqtt);
  await device.open();
  device.onDeviceMethod('lockDoor', (req, res) => res.send(200, { locked: true, got: req.payload }, () => {}));
  const twin = await device.getTwin();
  const desired = new Promise(resolve => twin.on('properties.desired', d => { if (d.building) resolve(d); }));
  await new Promise((res, rej) => twin.properties.reported.update({ firmware: '2.4.0' }, e => e ? rej(e) : res()));
  console.log('device connected, twin GET and reported patch ok');

  const svc = iothub.Client.fromConnectionString(cs);
  const r = await svc.invokeDeviceMethod(id, { methodName: 'lockDoor', payload: { x: 1 }, responseTimeoutInSeconds: 15 });
  if (r.result.status !== 200 || !r.result.payload.locked) fail('invoke: ' + JSON.stringify(r.result));
  console.log('direct method ok', JSON.stringify(r.result));

  const st = (await registry.getTwin(id)).responseBody;
  await st.update({ tags: { site: 'hq' }, properties: { desired: { building: '43', floor: 3 } } });
  const d = await desired;
  if (d.building !== '43' || typeof d.$version !== 'number') fail('desired notification ' + JSON.stringify(d));
  console.log('twin update + desired notification ok', JSON.stringify(d));

  // "can null out all desired properties" (the SDK's e2e twin tests), with
  // the twin's etag and then with etag *: the device is notified and its
  // copy loses every desired property; tags: null removes every tag.
  const userKeys = (o) => Object.keys(o).filter(k => !k.startsWith('$'));
  for (const et of [null, '*']) {
    await st.update({ properties: { desired: { building: '44', floor: 5 } } });
    const v0 = st.properties.desired.$version, etag0 = st.etag;
    if (et) st.etag = et;
    const cleared = new Promise(resolve => twin.on('properties.desired', p => {
      if (p.$version === v0 + 1) resolve(p);
    }));
    await st.update({ tags: null, properties: { desired: null } });
    if (st.etag === etag0 || st.properties.desired.$version !== v0 + 1) fail('null out: etag/version did not move ' + JSON.stringify(st));
    if (userKeys(st.properties.desired).length || userKeys(st.tags || {}).length) fail('null out left ' + JSON.stringify(st.properties.desired) + ' ' + JSON.stringify(st.tags));
    await cleared;
    if (userKeys(twin.properties.desired).length) fail('device twin after null out: ' + JSON.stringify(twin.properties.desired));
  }
  await st.update({ tags: { site: 'hq' } });
  console.log('null out of desired properties and tags ok (device notified)');

  const q = registry.createQuery("SELECT * FROM devices WHERE tags.site = 'hq'", 1);
  let n = 0; while (q.hasMoreResults) { const p = await q.nextAsTwin(); n += p.result.length; }
  if (n < 1) fail('query found nothing');
  console.log('paged query ok', n);

  const jobs = iothub.JobClient.fromConnectionString(cs);
  const jm = 'node-m-' + Date.now(), jt = 'node-t-' + Date.now();
  await jobs.scheduleDeviceMethod(jm, `deviceId IN ['${id}']`, { methodName: 'lockDoor', payload: null, responseTimeoutInSeconds: 15 });
  await jobs.scheduleTwinUpdate(jt, `deviceId IN ['${id}']`, { etag: '*', properties: { desired: { floor: 4 }, reported: {} } }, new Date(), 600);
  for (const j of [jm, jt]) {
    let status;
    for (let i = 0; i < 100; i++) {
      status = (await jobs.getJob(j)).jobStatus;
      if (['completed', 'failed', 'cancelled'].includes(status.status)) break;
      await sleep(100);
    }
    if (status.status !== 'completed' || status.deviceJobStatistics.succeededCount !== 1) fail('job ' + JSON.stringify(status));
    console.log('job ok', j, status.type, JSON.stringify(status.deviceJobStatistics));
  }
  const jq = jobs.createQuery('scheduleDeviceMethod', 'completed', 10);
  const jr = await jq.next();
  if (!jr.result.some(j => j.jobId === jm)) fail('job query');
  const dq = registry.createQuery(`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '${jm}'`);
  const dr = await dq.next();
  if (dr.result.length !== 1 || dr.result[0].status !== 'completed') fail('devices.jobs ' + JSON.stringify(dr.result));
  console.log('job query + devices.jobs ok');
  const later = 'node-later-' + Date.now();
  await jobs.scheduleDeviceMethod(later, '*', { methodName: 'lockDoor' }, new Date(Date.now() + 3600e3), 600);
  const c = await jobs.cancelJob(later);
  if (c.jobStatus.status !== "cancelled") fail("cancel " + JSON.stringify(c.jobStatus));
  console.log('cancel ok');
  // The SDK's job test: a twin job with empty sections is queued, then
  // cancelled.
  const empty = 'node-empty-' + Date.now();
  const ej = await jobs.scheduleTwinUpdate(empty, `deviceId IN ['${id}']`, { etag: '*', tags: {}, properties: { desired: {}, reported: {} } }, new Date(Date.now() + 3600e3), 600);
  if (ej.jobStatus.status !== 'queued') fail('empty twin job ' + JSON.stringify(ej.jobStatus));
  if ((await jobs.cancelJob(empty)).jobStatus.status !== 'cancelled') fail('empty twin job not cancelled');
  console.log('empty twin job queued and cancelled ok');
  try { await jobs.getJob('nope-' + Date.now()); fail('missing job found'); } catch (e) { console.log('missing job ->', e.name); }

  // A second device over MQTT over WebSocket on the HTTPS port
  // (azure-contract.md §7), as the SDK's MqttWs transport dials it.
  const wsId = id + '-ws';
  await registry.create({ deviceId: wsId });
  const wsKey = (await registry.get(wsId)).responseBody.authentication.symmetricKey.primaryKey;
  const wsDevice = DeviceClient.fromConnectionString(`HostName=${httpsHost};DeviceId=${wsId};SharedAccessKey=${wsKey}`, MqttWs);
  await wsDevice.open();
  wsDevice.onDeviceMethod('ping', (req, res) => res.send(200, { pong: req.payload }, () => {}));
  // Telemetry is acknowledged (PUBACK); it also follows the method
  // SUBSCRIBE on the connection, so the device is subscribed once it is.
  await wsDevice.sendEvent(new Message('{"t":1}'));
  const wr = await svc.invokeDeviceMethod(wsId, { methodName: 'ping', payload: 7, responseTimeoutInSeconds: 15 });
  if (wr.result.status !== 200 || wr.result.payload.pong !== 7) fail('invoke over WebSocket: ' + JSON.stringify(wr.result));
  await wsDevice.close();
  await registry.delete(wsId);
  console.log('MQTT over WebSocket ok: telemetry sent, direct method', JSON.stringify(wr.result));

  await device.close();
  try { await svc.invokeDeviceMethod(id, { methodName: 'lockDoor', responseTimeoutInSeconds: 5 }); fail('offline invoke worked'); }
  catch (e) { console.log('offline device ->', e.name, e.message.slice(0, 80)); }
  await registry.delete(id);
  console.log('ALL OK');
  process.exit(0);
})().catch(e => fail(e.stack || e));
