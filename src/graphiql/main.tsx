/**
 * The GraphiQL page served at /graphiql: a token bar above GraphiQL 5. Everything it loads comes
 * from the gateway itself (bundled by ./build.mjs); nothing is fetched from another host.
 */
import { GraphiQL } from 'graphiql';
import 'graphiql/style.css';
import { StrictMode, useEffect, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { createGatewayFetcher, type SocketState } from './fetcher';
import './page.css';

/** Set by the server in a `<script type="application/json">` block (see transports/http/graphiql.ts). */
interface PageConfig {
  /** Show how to mint a development token (`npm run token`): outside production with HS256. */
  tokenHint: boolean;
  /** No DATABASE_URL, REDIS_URL, AMQP_URL: everything runs in this one process. */
  embedded: boolean;
}

const ASSETS = '/graphiql/assets';
const TOKEN_KEY = 'cloudphone-realtime:token';

// Monaco's workers are bundled next to the page (no CDN).
(globalThis as unknown as { MonacoEnvironment: unknown }).MonacoEnvironment = {
  getWorker(_id: string, label: string) {
    const name = label === 'json' ? 'json' : label === 'graphql' ? 'graphql' : 'editor';
    return new Worker(`${ASSETS}/${name}.worker.js`);
  },
};

const DEFAULT_QUERY = `# Paste a token above, then run an operation.
# Subscriptions go over the WebSocket; queries and mutations over HTTP.

subscription QuotaChanged {
  quotaChanged {
    eventId
    type
    userId
    occurredAt
    kind
    quotaId
    usagePercent
    severity
    limits { maxDevices totalCpuCores totalMemoryGB }
    usage { currentDevices usedCpuCores usedMemoryGB }
  }
}

query MyQuota {
  quota { id userId status version limits { maxDevices } }
}
`;

function readConfig(): PageConfig {
  const element = document.getElementById('graphiql-config');
  try {
    return { tokenHint: false, embedded: false, ...(element ? JSON.parse(element.textContent ?? '{}') : {}) };
  } catch {
    return { tokenHint: false, embedded: false };
  }
}

/** The token's claims for display only; the server verifies it. */
function describeToken(token: string): string {
  if (!token) return 'no token';
  try {
    const part = token.split('.')[1] ?? '';
    const claims = JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/'))) as Record<string, unknown>;
    const roles = Array.isArray(claims.roles) && claims.roles.length > 0 ? ` (${claims.roles.join(', ')})` : '';
    const exp = typeof claims.exp === 'number' ? `, expires ${new Date(claims.exp * 1000).toLocaleString()}` : '';
    return `user ${String(claims.sub)}${roles}${exp}`;
  } catch {
    return 'not a JWT';
  }
}

function App({ config }: { config: PageConfig }) {
  const origin = window.location;
  const [draft, setDraft] = useState(() => localStorage.getItem(TOKEN_KEY) ?? '');
  const [token, setToken] = useState(draft);
  const [socket, setSocket] = useState<{ state: SocketState; detail?: string }>({ state: 'idle' });
  const gateway = useMemo(
    () =>
      createGatewayFetcher({
        httpUrl: `${origin.origin}/graphql`,
        wsUrl: `${origin.protocol === 'https:' ? 'wss:' : 'ws:'}//${origin.host}/graphql`,
        token,
        onSocketState: (state, detail) => setSocket({ state, detail }),
      }),
    // One fetcher for the page's life; the token is swapped in below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [],
  );
  useEffect(() => () => gateway.dispose(), [gateway]);

  const apply = () => {
    const next = draft.trim().replace(/^Bearer\s+/i, '');
    setToken(next);
    gateway.setToken(next);
    if (next) localStorage.setItem(TOKEN_KEY, next);
    else localStorage.removeItem(TOKEN_KEY);
  };

  const params = new URLSearchParams(window.location.search);
  return (
    <div className="cpr-page">
      <form
        className="cpr-token-bar"
        onSubmit={(event) => {
          event.preventDefault();
          apply();
        }}
      >
        <label htmlFor="cpr-token">JWT</label>
        <input
          id="cpr-token"
          type="password"
          autoComplete="off"
          spellCheck={false}
          placeholder="Paste a token (sent as Authorization: Bearer … on HTTP and in connection_init on the socket)"
          value={draft}
          onChange={(event) => setDraft(event.target.value)}
        />
        <button id="cpr-token-apply" type="submit">
          Use token
        </button>
        <span id="cpr-token-who" className="cpr-muted">
          {describeToken(token)}
        </span>
        <span id="cpr-socket" data-state={socket.state} className={`cpr-socket cpr-socket-${socket.state}`}>
          socket: {socket.state}
          {socket.detail ? ` (${socket.detail})` : ''}
        </span>
      </form>
      {config.tokenHint && (
        <div id="cpr-token-hint" className="cpr-hint">
          {config.embedded ? 'Embedded mode (no DATABASE_URL, REDIS_URL or AMQP_URL). ' : ''}
          Development token: <code>npm run token -- --sub &lt;userId&gt;</code>, or{' '}
          <code>npm run token -- --sub &lt;userId&gt; --roles admin</code> for an administrator. Publish a test
          event with <code>npm run publish-event -- quota.updated '{'{'}"userId":"&lt;userId&gt;"{'}'}'</code>.
        </div>
      )}
      <div className="cpr-graphiql">
        <GraphiQL
          fetcher={gateway.fetcher}
          defaultQuery={DEFAULT_QUERY}
          initialQuery={params.get('query') ?? undefined}
          initialVariables={params.get('variables') ?? undefined}
          isHeadersEditorEnabled
        />
      </div>
    </div>
  );
}

const root = document.getElementById('graphiql');
if (root) {
  createRoot(root).render(
    <StrictMode>
      <App config={readConfig()} />
    </StrictMode>,
  );
}
