/**
 * podman with settings and storage of its own in a folder the test owns (nothing global changes),
 * and the project's image built in it from the Containerfile, on the local stand-ins for its base
 * images (test/image/stand-in-bases.sh: no registry is reachable here), with no network (npm
 * installs from the machine's npm cache). Used by the image test and the cluster tests.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..', '..');
export const PROJECT_VERSION = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

export interface Podman {
  env: NodeJS.ProcessEnv;
  run(args: string[], timeoutMs?: number): { code: number; stdout: string; stderr: string };
  /** Runs podman and returns its output; throws with its stderr when it fails. */
  must(args: string[], timeoutMs?: number): string;
  /** The stand-in base images: [build, runtime]. */
  standInBases(): [string, string];
  /** Builds the Containerfile into `tag`. */
  buildProjectImage(tag: string): void;
  /** Removes every container and image, and the folder. */
  close(): void;
}

export function podmanIn(dir: string): Podman {
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'containers.conf'),
    // crun refuses this kind of machine's hybrid cgroups; root here cannot raise limits above
    // the machine's hard ones, which podman's defaults ask for.
    '[engine]\nruntime = "runc"\n[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n',
  );
  writeFileSync(
    join(dir, 'storage.conf'),
    `[storage]\ndriver = "overlay"\nrunroot = "${dir}/run"\ngraphroot = "${dir}/storage"\n`,
  );
  const env = {
    ...process.env,
    CONTAINERS_CONF: join(dir, 'containers.conf'),
    CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf'),
  };
  const run = (args: string[], timeoutMs = 60_000) => {
    const r = spawnSync('podman', args, { env, encoding: 'utf8', timeout: timeoutMs, cwd: ROOT });
    return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  };
  const must = (args: string[], timeoutMs?: number) => {
    const r = run(args, timeoutMs);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
    return r.stdout;
  };
  const standInBases = (): [string, string] => {
    const bases = spawnSync('bash', [join(ROOT, 'test/image/stand-in-bases.sh')], { env, encoding: 'utf8' });
    if (bases.status !== 0) throw new Error(`stand-in bases: ${bases.stderr}`);
    return bases.stdout.trim().split(' ') as [string, string];
  };
  return {
    env,
    run,
    must,
    standInBases,
    buildProjectImage(tag) {
      const [build, runtime] = standInBases();
      must(
        [
          'build',
          '--pull=never',
          '--network=none',
          // npm installs from the machine's cache (warm after `npm ci`), offline.
          '--volume',
          `${join(homedir(), '.npm')}:/root/.npm`,
          '--build-arg',
          `BUILD_IMAGE=${build}`,
          '--build-arg',
          `RUNTIME_IMAGE=${runtime}`,
          '--build-arg',
          `VERSION=${PROJECT_VERSION}`,
          '--build-arg',
          'npm_config_offline=true',
          '-f',
          'Containerfile',
          '-t',
          tag,
          '.',
        ],
        600_000,
      );
    },
    close() {
      run(['rm', '--all', '--force']);
      run(['system', 'reset', '--force']);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
