/**
 * `npm run token -- --sub <userId> [--roles admin,user] [--expires-in 3600]`: prints a JWT signed
 * with the configured HS256 secret (the development secret when JWT_SECRET is unset).
 * Refuses in production: real tokens come from the platform's identity service.
 */
import { parseArgs } from 'node:util';
import { mintDevelopmentToken } from './dev-token';

const { values } = parseArgs({
  options: {
    sub: { type: 'string' },
    roles: { type: 'string', default: '' },
    'expires-in': { type: 'string', default: '3600' },
    username: { type: 'string' },
  },
});

const expiresIn = Number(values['expires-in']);
if (!Number.isInteger(expiresIn) || expiresIn <= 0) {
  process.stderr.write('--expires-in must be a positive number of seconds\n');
  process.exit(2);
}
mintDevelopmentToken('npm run token', { sub: values.sub, roles: values.roles, username: values.username }, expiresIn).then(
  (token) => process.stdout.write(`${token}\n`),
  (error: unknown) => {
    process.stderr.write(`npm run token: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
