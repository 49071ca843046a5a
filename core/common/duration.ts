/** Durations as written in resources (`500ms`, `5s`, `1m`, `24h`, `1h30m`). */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseDurationMs(text: string): number {
  const re = /([0-9]+)(ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (UNIT_MS[m[2] as string] as number);
    consumed = re.lastIndex;
  }
  if (consumed === 0 || consumed !== text.length) throw new Error(`not a duration: ${JSON.stringify(text)}`);
  return total;
}

/**
 * Protobuf JSON durations (what Istio and Envoy accept) are seconds with an `s` suffix only:
 * `1m` is rejected there, `60s` is not.
 */
export function toProtoDuration(text: string): string {
  const ms = parseDurationMs(text);
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(3).replace(/0+$/, '')}s`;
}

/**
 * A Gateway API duration (GEP-2257: up to four parts of at most five digits, h m s ms, such as
 * `1h30m` or `1500ms`), exact to the millisecond.
 */
export function toGatewayApiDuration(ms: number): string {
  const parts: [number, string][] = [
    [Math.floor(ms / 3_600_000), 'h'],
    [Math.floor(ms / 60_000) % 60, 'm'],
    [Math.floor(ms / 1000) % 60, 's'],
    [ms % 1000, 'ms'],
  ];
  const written = parts.filter(([n]) => n > 0).map(([n, unit]) => `${n}${unit}`);
  return written.length > 0 ? written.join('') : '0s';
}
