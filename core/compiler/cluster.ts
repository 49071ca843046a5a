/**
 * How the compiler's input is read from a cluster rather than from files, in one place for the
 * controller and `gateway --kube`: both must route exactly the same previews.
 */

/**
 * Compile problems that never stop a policy in a cluster: a preview that is not Ready yet (its
 * routes are added when it is) and a preview of another repository (never routed; the preview
 * controller marks it Failed, since anyone can open a pull request).
 */
export const CLUSTER_TOLERATED = new Set(['SY_MISSING_PREVIEW', 'SY_REPOSITORY_MISMATCH']);

type ClusterPreview = { metadata?: { deletionTimestamp?: unknown }; status?: { phase?: string } | undefined };

/**
 * The Previews that may route: one being deleted loses its routes first (its finalizer removes the
 * workload after), and one with no status yet is Pending (in a file, no status means Ready: files
 * describe what is deployed).
 */
export function clusterPreviews<T extends ClusterPreview>(previews: readonly T[]): T[] {
  return previews
    .filter((p) => !p.metadata?.deletionTimestamp)
    .map((p) => (p.status?.phase ? p : { ...p, status: { ...p.status, phase: 'Pending' } }));
}
