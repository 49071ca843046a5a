/**
 * The test cluster's certificates and kubeconfigs, made with openssl in the run folder: one CA,
 * the API server's serving certificate (named by the node address pods reach it at, and by the
 * `kubernetes` Service's names), a client certificate per component, and the service-account key
 * pair. EC P-256 keys: the run makes nine, and RSA keys made it wait seconds for them.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  ca: string;
  /** kubeconfig file per user: admin, controller-manager, scheduler, kubelet. */
  kubeconfigs: Record<'admin' | 'controllerManager' | 'scheduler' | 'kubelet', string>;
  file(name: string): string;
}

interface Subject {
  cn: string;
  org?: string;
  /** subjectAltName entries, e.g. `IP:198.19.0.1` or `DNS:kubernetes`. */
  names?: string[];
}

export function makePki(dir: string, server: string, apiAddress: string, nodeName: string): Pki {
  mkdirSync(dir, { recursive: true });
  const file = (name: string) => join(dir, name);
  // No system openssl.cnf: its defaults would mark every certificate a CA.
  writeFileSync(file('openssl.cnf'), '[req]\ndistinguished_name = dn\n[dn]\n');
  const openssl = (args: string[]) =>
    execFileSync('openssl', args, {
      env: { ...process.env, OPENSSL_CONF: file('openssl.cnf') },
      stdio: 'pipe',
    });
  const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl([
    'req',
    '-x509',
    ...keyArgs,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-days',
    '7',
    '-subj',
    '/CN=switchyard-test-cluster-ca',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  const issue = (name: string, s: Subject) => {
    const subj = `/CN=${s.cn}${s.org ? `/O=${s.org}` : ''}`;
    openssl([
      'req',
      '-x509',
      ...keyArgs,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.crt`),
      '-days',
      '7',
      '-subj',
      subj,
      '-CA',
      file('ca.crt'),
      '-CAkey',
      file('ca.key'),
      '-addext',
      'basicConstraints=critical,CA:FALSE',
      '-addext',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      '-addext',
      'extendedKeyUsage=serverAuth,clientAuth',
      ...(s.names ? ['-addext', `subjectAltName=${s.names.join(',')}`] : []),
    ]);
  };
  issue('apiserver', {
    cn: 'kube-apiserver',
    names: [
      `IP:${apiAddress}`,
      'IP:127.0.0.1',
      'DNS:localhost',
      'DNS:kubernetes',
      'DNS:kubernetes.default',
      'DNS:kubernetes.default.svc',
      'DNS:kubernetes.default.svc.cluster.local',
    ],
  });
  issue('admin', { cn: 'switchyard-test-admin', org: 'system:masters' });
  issue('controller-manager', { cn: 'system:kube-controller-manager' });
  issue('scheduler', { cn: 'system:kube-scheduler' });
  issue('kubelet', { cn: `system:node:${nodeName}`, org: 'system:nodes' });
  issue('apiserver-kubelet-client', { cn: 'kube-apiserver-kubelet-client', org: 'system:masters' });
  issue('front-proxy-client', { cn: 'front-proxy-client' });
  openssl(['genpkey', '-algorithm', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file('sa.key')]);
  openssl(['pkey', '-in', file('sa.key'), '-pubout', '-out', file('sa.pub')]);

  const kubeconfig = (name: string, user: string) => {
    const path = file(`${name}.kubeconfig`);
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'test', cluster: { server, 'certificate-authority': file('ca.crt') } }],
        users: [
          {
            name: user,
            user: { 'client-certificate': file(`${name}.crt`), 'client-key': file(`${name}.key`) },
          },
        ],
        contexts: [{ name: 'test', context: { cluster: 'test', user } }],
        'current-context': 'test',
      }),
    );
    return path;
  };
  return {
    dir,
    ca: file('ca.crt'),
    file,
    kubeconfigs: {
      admin: kubeconfig('admin', 'admin'),
      controllerManager: kubeconfig('controller-manager', 'controller-manager'),
      scheduler: kubeconfig('scheduler', 'scheduler'),
      kubelet: kubeconfig('kubelet', 'kubelet'),
    },
  };
}
