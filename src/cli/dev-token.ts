/**
 * The one way the CLIs mint a development token: with the configured HS256 secret, issuer and
 * audience, so the server accepts it; never in production.
 */
import { signDevelopmentToken } from '../auth/jwt';
import { ConfigError, loadConfig, type Config } from '../config';

export async function mintDevelopmentToken(
  command: string,
  claims: { sub: string | undefined; roles: string; username?: string },
  expiresInSec = 3_600,
): Promise<string> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${command}: configuration error: ${error.message}\n`);
    process.exit(78);
  }
  if (config.production) {
    process.stderr.write(`${command} refuses to mint tokens with NODE_ENV=production\n`);
    process.exit(1);
  }
  if (!config.jwt.secret) {
    process.stderr.write(`${command} needs JWT_SECRET (it cannot sign with a public key)\n`);
    process.exit(1);
  }
  if (!claims.sub) {
    process.stderr.write(`usage: ${command} -- --sub <userId> [--roles admin,user]\n`);
    process.exit(2);
  }
  const roles = claims.roles
    .split(',')
    .map((r) => r.trim())
    .filter(Boolean);
  return signDevelopmentToken(
    config.jwt.secret,
    { sub: claims.sub, roles, username: claims.username },
    { expiresInSec, issuer: config.jwt.issuer, audience: config.jwt.audience },
  );
}
