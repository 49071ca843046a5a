// A gRPC test upstream run inside a test network namespace (`ip netns exec`): serves
// switchyard.test.Echo/Who over cleartext HTTP/2 (h2c), answering with its name (messages as JSON,
// as test/support/grpc-echo.ts describes the service), and prints its port once listening.
import * as grpc from '@grpc/grpc-js';

const [name, address] = process.argv.slice(2);
const json = {
  serialize: (v) => Buffer.from(JSON.stringify(v)),
  deserialize: (b) => JSON.parse(b.toString()),
};
const server = new grpc.Server();
server.addService(
  {
    who: {
      path: '/switchyard.test.Echo/Who',
      requestStream: false,
      responseStream: false,
      requestSerialize: json.serialize,
      requestDeserialize: json.deserialize,
      responseSerialize: json.serialize,
      responseDeserialize: json.deserialize,
    },
  },
  { who: (call, done) => done(null, { version: name, authority: call.getHost() }) },
);
server.bindAsync(`${address}:0`, grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`${port}\n`);
});
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)));
