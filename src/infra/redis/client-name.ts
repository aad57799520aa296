/**
 * The name each of the gateway's Redis connections gives itself (`CLIENT SETNAME`), as operators
 * see it in `CLIENT LIST`: role, deployment (topic prefix) and process. Redis refuses names with
 * spaces or special characters, and ioredis then silently leaves the connection unnamed: keep to
 * word characters, `:`, `.`, `-` and `/`.
 */
export function redisClientName(role: string, topicPrefix: string): string {
  const safe = (part: string) => part.replace(/[^\w:.-]/g, '_');
  return `cloudphone-realtime/${safe(role)}/${safe(topicPrefix)}/pid${process.pid}`;
}
