// Test HTTP servers on 127.0.0.1 for a unit file: each listens on a free port, and every one is closed after each
// test (open connections too, so a test that left a keep-alive socket cannot hold the next one up).
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Call at a file's top level; `listen` starts a server (on 127.0.0.1 unless told) and resolves with 'ADDRESS:PORT'. */
export function localServers(): { listen(server: Server, address?: string): Promise<string> } {
  const servers: Server[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });
  return {
    async listen(server, address = '127.0.0.1') {
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, address, resolve));
      return `${address}:${(server.address() as AddressInfo).port}`;
    },
  };
}
