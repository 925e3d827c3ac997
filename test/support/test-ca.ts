// A throwaway certificate authority made with openssl for one test suite, and a server certificate it signs for
// the names a test registry answers as. A client trusts it through NODE_EXTRA_CA_CERTS (the action) or `ca`
// (a test's own request); nothing is installed on the machine.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export interface TestCa {
  /** PEM file of the CA certificate: NODE_EXTRA_CA_CERTS. */
  readonly caFile: string;
  readonly ca: Buffer;
  /** The server certificate and its key (PEM files), for `names` and 127.0.0.1. */
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  remove(): void;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export async function makeTestCa(names: readonly string[]): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), 'rp-ca-'));
  const p = (f: string) => join(dir, f);
  const openssl = (args: string[]) => execFileP('openssl', args, { cwd: dir });
  await openssl([
    'req',
    '-x509',
    ...EC,
    '-keyout',
    p('ca.key'),
    '-out',
    p('ca.crt'),
    '-days',
    '2',
    '-subj',
    '/CN=rp-test-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  await openssl(['req', ...EC, '-keyout', p('server.key'), '-out', p('server.csr'), '-subj', `/CN=${names[0]}`]);
  const san = [...names.map((n) => `DNS:${n}`), 'IP:127.0.0.1'].join(',');
  writeFileSync(
    p('ext.cnf'),
    `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n`,
  );
  await openssl([
    'x509',
    '-req',
    '-in',
    p('server.csr'),
    '-CA',
    p('ca.crt'),
    '-CAkey',
    p('ca.key'),
    '-CAcreateserial',
    '-out',
    p('server.crt'),
    '-days',
    '2',
    '-extfile',
    p('ext.cnf'),
  ]);
  return {
    caFile: p('ca.crt'),
    ca: readFileSync(p('ca.crt')),
    certFile: p('server.crt'),
    keyFile: p('server.key'),
    cert: readFileSync(p('server.crt')),
    key: readFileSync(p('server.key')),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
