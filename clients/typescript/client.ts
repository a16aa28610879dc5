// A small client written against the types openapi-typescript generates from
// the service's document (`api.d.ts`, made by the test next to this file).
// It compiles only if the document types what the service sends: with an
// untyped `{"type": "object"}` response, `secret.token` would be an error.
import type { components, paths } from "./api";

type Json<P extends keyof paths, M extends keyof paths[P], S extends number> =
  paths[P][M] extends { responses: Record<S, { content: { "application/json": infer T } }> } ? T : never;

type NewTokenSecret = Json<"/v1/tokens", "post", 201>;
type RecordPage = Json<"/v1/collections/{c}/records", "get", 200>;
type Job = Json<"/v1/jobs/{id}", "get", 200>;
type Problem = components["schemas"]["Problem"];

export function bearer(secret: NewTokenSecret): string {
  const token: string = secret.token;
  const scopes: ("read" | "write" | "admin")[] = secret.scopes;
  return `Bearer ${token} (${scopes.join(",")})`;
}

export function nextPage(page: RecordPage): string | null {
  const ids: string[] = page.items.map((r) => r.id);
  const created: string = page.items[0]?.created_at ?? "";
  const total: number | undefined = page.total;
  return ids.length > 0 && created && total !== 0 ? page.next_cursor : null;
}

export function finished(job: Job): boolean {
  const state: "queued" | "running" | "succeeded" | "failed" | "cancelled" = job.state;
  return state === "succeeded" && job.result !== null;
}

export function explain(p: Problem): string {
  const status: number = p.status;
  return `${status} ${p.code}: ${p.detail}`;
}
