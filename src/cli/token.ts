/**
 * `npm run token -- --sub <userId> [--roles admin,user] [--expires-in 3600]`: prints a JWT signed
 * with the configured HS256 secret (the development secret when JWT_SECRET is unset).
 * Refuses in production: real tokens come from the platform's identity service.
 */
import { parseArgs } from 'node:util';
import { signDevelopmentToken } from '../auth/jwt';
import { loadConfig } from '../config';

const { values } = parseArgs({
  options: {
    sub: { type: 'string' },
    roles: { type: 'string', default: '' },
    'expires-in': { type: 'string', default: '3600' },
    username: { type: 'string' },
  },
});

const config = loadConfig();
if (config.production) {
  process.stderr.write('npm run token refuses to mint tokens with NODE_ENV=production\n');
  process.exit(1);
}
if (!config.jwt.secret) {
  process.stderr.write('npm run token needs JWT_SECRET (it cannot sign with a public key)\n');
  process.exit(1);
}
if (!values.sub) {
  process.stderr.write('usage: npm run token -- --sub <userId> [--roles admin] [--expires-in 3600]\n');
  process.exit(2);
}
const roles = values.roles.split(',').map((r) => r.trim()).filter(Boolean);
process.stdout.write(
  `${signDevelopmentToken(
    config.jwt.secret,
    { sub: values.sub, roles, username: values.username },
    { expiresInSec: Number(values['expires-in']), issuer: config.jwt.issuer, audience: config.jwt.audience },
  )}\n`,
);
