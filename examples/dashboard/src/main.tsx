/**
 * The example: sign in as a demo user (development only: the gateway's POST /dev/token on its
 * embedded default), list the user's devices and quota with queries, then keep them current from
 * pushes only. No polling, no refetch, no updateQuery for a status change: each event carries its
 * device, and Apollo's cache updates the list by itself.
 */
import { createRealtimeClient, type RealtimeClient } from '@cloudphone/realtime-client';
import { RealtimeProvider, useConnectionState, useRealtimeDevice, useRealtimeQuota } from '@cloudphone/realtime-react';
import { StrictMode, useCallback, useState } from 'react';
import { createRoot } from 'react-dom/client';

/** Development only: the gateway signs a short-lived token for any user id on its embedded default. */
async function demoToken(sub: string): Promise<string> {
  const response = await fetch('/dev/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub }),
  });
  if (!response.ok) throw new Error(`POST /dev/token answered ${response.status}: is the gateway on its embedded default?`);
  return ((await response.json()) as { token: string }).token;
}

function connect(userId: string): RealtimeClient {
  const origin = window.location.origin;
  return createRealtimeClient({
    httpUrl: `${origin}/graphql`,
    wsUrl: `${origin.replace(/^http/, 'ws')}/graphql`,
    getToken: () => demoToken(userId),
  });
}

function ConnectionBadge() {
  const state = useConnectionState();
  const text = state.status === 'reconnecting' ? `reconnecting (attempt ${state.attempt})` : state.status;
  return (
    <span data-testid="connection" data-status={state.status} className={`badge ${state.status}`}>
      {text}
    </span>
  );
}

function QuotaPanel() {
  const { entity: quota, event, loading } = useRealtimeQuota();
  if (loading) return <p>Loading quota…</p>;
  if (!quota) return <p data-testid="quota">No quota</p>;
  return (
    <section data-testid="quota">
      <h2>Quota</h2>
      <p>
        Devices <span data-testid="quota-devices">{quota.usage.currentDevices ?? 0}</span> of {quota.limits.maxDevices ?? '∞'} · status{' '}
        {quota.status} · version {quota.version}
      </p>
      {event && <p className="muted">last change: {event.kind}</p>}
    </section>
  );
}

function Devices() {
  const [log, setLog] = useState<{ eventId: string; text: string }[]>([]);
  const onEvent = useCallback((event: { eventId: string; deviceId: string; status: string }) => {
    setLog((entries) => [{ eventId: event.eventId, text: `${event.deviceId} → ${event.status}` }, ...entries].slice(0, 50));
  }, []);
  const { devices, loading, error } = useRealtimeDevice({ onEvent });
  if (loading) return <p>Loading devices…</p>;
  if (error) return <p role="alert">{error.message}</p>;
  return (
    <section>
      <h2>Devices</h2>
      <table>
        <thead>
          <tr>
            <th>Name</th>
            <th>Status</th>
            <th>Version</th>
          </tr>
        </thead>
        <tbody data-testid="devices">
          {devices.map((device) => (
            <tr key={device.id} data-testid={`device-${device.id}`}>
              <td>{device.name}</td>
              <td data-testid="status">{device.status}</td>
              <td>{device.version}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h3>Events</h3>
      <ol data-testid="events">
        {log.map((entry) => (
          <li key={entry.eventId} data-event-id={entry.eventId}>
            {entry.text}
          </li>
        ))}
      </ol>
    </section>
  );
}

function App() {
  const [client, setClient] = useState<RealtimeClient>();
  const [userId, setUserId] = useState('demo');
  if (!client) {
    return (
      <form
        onSubmit={(e) => {
          e.preventDefault();
          setClient(connect(userId));
        }}
      >
        <h1>cloudphone-realtime</h1>
        <label>
          Demo user id <input name="userId" value={userId} onChange={(e) => setUserId(e.target.value)} />
        </label>{' '}
        <button type="submit">Sign in as demo user</button>
        <p className="muted">Development only: the gateway signs the token (POST /dev/token, embedded default).</p>
      </form>
    );
  }
  return (
    <RealtimeProvider client={client}>
      <header>
        <h1>
          {userId}'s cloud phones <ConnectionBadge />
        </h1>
      </header>
      <QuotaPanel />
      <Devices />
    </RealtimeProvider>
  );
}

const style = document.createElement('style');
style.textContent = `body{font:14px system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}td,th{padding:.25rem .75rem;border-bottom:1px solid #ddd;text-align:left}
.badge{font-size:.8rem;padding:.1rem .5rem;border-radius:1rem;background:#eee}.connected{background:#c8f0c8}.reconnecting{background:#f7e3a1}.offline{background:#f4b6b6}.muted{color:#777}`;
document.head.append(style);
createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
