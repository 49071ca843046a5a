/**
 * The images the cluster runs, built with podman (its storage in the run folder) and imported into
 * the cluster's containerd, as no registry is reachable: the project's image from its
 * Containerfile, and the test app (test/cluster/app) at two "commits" plus a failing canary.
 */
import { join } from 'node:path';
import { podmanIn } from '../support/podman.js';

export const SWITCHYARD_IMAGE = 'localhost/switchyard:cluster-test';
export const appImage = (tag: string) => `localhost/switchyard-test/app:${tag}`;
/** A pull request's two commits; the preview template names images by `{sha7}`. */
export const PR_COMMITS = ['c0ffee1'.padEnd(40, '0'), 'c0ffee2'.padEnd(40, '0')] as const;
/**
 * The app's tags: stable and canary versions, a canary build that fails one request in five, and
 * the pull request's two commits.
 */
export const APP_TAGS: Record<string, { failPercent: number }> = {
  v1: { failPercent: 0 },
  v2: { failPercent: 0 },
  'v2-failing': { failPercent: 20 },
  [PR_COMMITS[0].slice(0, 7)]: { failPercent: 0 },
  [PR_COMMITS[1].slice(0, 7)]: { failPercent: 0 },
};

export interface BuiltImages {
  /** ms per step */
  timings: Record<string, number>;
}

export function buildAndImportImages(run: string, ctr: (args: string[]) => string): BuiltImages {
  const timings: Record<string, number> = {};
  let t = performance.now();
  const lap = (step: string) => {
    timings[step] = Math.round(performance.now() - t);
    t = performance.now();
  };
  const podman = podmanIn(join(run, 'podman'));
  try {
    podman.buildProjectImage(SWITCHYARD_IMAGE);
    lap('switchyard image');
    const [, runtime] = podman.standInBases();
    for (const [tag, { failPercent }] of Object.entries(APP_TAGS))
      podman.must([
        'build',
        '--pull=never',
        '--network=none',
        // buildah's layer cache does not key an ENV on the build argument it expands: every tag
        // came out as the first one's image.
        '--no-cache',
        '--build-arg',
        `RUNTIME_IMAGE=${runtime}`,
        '--build-arg',
        `APP_VERSION=${tag}`,
        '--build-arg',
        `FAIL_PERCENT=${failPercent}`,
        '-t',
        appImage(tag),
        join(import.meta.dirname, 'app'),
      ]);
    const ids = Object.keys(APP_TAGS).map((t) =>
      podman.must(['image', 'inspect', '--format', '{{.Id}}', appImage(t)]),
    );
    if (new Set(ids).size !== ids.length)
      throw new Error(`the app's tags are not distinct images: ${ids.join(', ')}`);
    lap('app images');
    const archive = join(run, 'images', 'all.tar');
    podman.must(
      [
        'save',
        '--format',
        'docker-archive',
        '-m',
        '-o',
        archive,
        SWITCHYARD_IMAGE,
        ...Object.keys(APP_TAGS).map(appImage),
      ],
      300_000,
    );
    ctr(['images', 'import', archive]);
    lap('import into containerd');
  } finally {
    podman.close();
  }
  return { timings };
}
