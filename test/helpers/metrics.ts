/** Reads `/metrics` as Prometheus would: sample name with its labels -> value. */

export interface Scrape {
  readonly contentType: string;
  readonly text: string;
  /** The value of `name{labels}` (labels as printed, e.g. `{field="quotaChanged"}`), or undefined. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** The `# TYPE` line's type of a metric family. */
  type(name: string): string | undefined;
}

export async function scrape(baseUrl: string): Promise<Scrape> {
  const response = await fetch(`${baseUrl}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  const text = await response.text();
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) types.set(type[1] as string, type[2] as string);
    if (line === '' || line.startsWith('#')) continue;
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    if (!sample) throw new Error(`unparsable metrics line: ${line}`);
    samples.set(`${sample[1]}${sample[2] ?? ''}`, Number(sample[3]));
  }
  return {
    contentType: response.headers.get('content-type') ?? '',
    text,
    value(name, labels) {
      const printed = labels
        ? `{${Object.entries(labels)
            .map(([k, v]) => `${k}="${v}"`)
            .join(',')}}`
        : '';
      return samples.get(`${name}${printed}`);
    },
    type: (name) => types.get(name),
  };
}
