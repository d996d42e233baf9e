import { readWebhookEvent } from '../../src/ledger';
import { API_TOKEN, buildWeb, type BuiltWeb } from '../helpers/build-web';
import { paymentEvent, type PaymentEventOptions } from '../helpers/deliveries';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let web: BuiltWeb;

beforeEach(async () => {
  web = await buildWeb();
});

afterEach(async () => {
  await web.close();
});

const RECEIVED = Date.UTC(2026, 10, 27, 10, 0, 0);
const minute = (n: number) => RECEIVED + n * 60_000;

/** Records one webhook event through the ledger's door, received at `receivedAt`. */
async function store(options: PaymentEventOptions, receivedAt: number) {
  const event = paymentEvent(options);
  const rawBody = JSON.stringify(event);
  return web.ledger.apply({
    event: {
      eventId: options.eventId,
      source: 'webhook',
      type: event.type,
      keyId: 'key-new',
      signature: 'sig',
      rawBody,
      rawIndex: null,
      receivedAt,
    },
    reading: readWebhookEvent(JSON.parse(rawBody)),
  });
}

async function api(query: string) {
  const res = await fetch(`${web.url}/v1/events${query}`, {
    headers: { authorization: `Bearer ${API_TOKEN}` },
  });
  return { status: res.status, json: (await res.json()) as Json };
}

const ids = (json: Json) => json.events.map((event: Json) => event.eventId);

/** Five events of one payment: two applied, an older one (superseded), a re-send (duplicate), an unknown code. */
async function seed() {
  const payment = { paymentId: '9100000001_0' };
  await store({ ...payment, eventId: 'ev-1', statusCode: 5, changeTime: '20261127100000' }, minute(0));
  await store({ ...payment, eventId: 'ev-2', statusCode: 9, changeTime: '20261127100100' }, minute(1));
  await store({ ...payment, eventId: 'ev-3', statusCode: 5, changeTime: '20261127095900' }, minute(2));
  await store({ ...payment, eventId: 'ev-4', statusCode: 9, changeTime: '20261127100100' }, minute(3));
  await store(
    { ...payment, eventId: 'ev-5', statusCode: 4242, changeTime: '20261127100500', type: 'payment.odd' },
    minute(4),
  );
}

describe('GET /v1/events', () => {
  it('lists stored events oldest first, with their outcome and a cursor each', async () => {
    await seed();
    const res = await api('?after=0');
    expect(res.status).toBe(200);
    expect(ids(res.json)).toEqual(['ev-1', 'ev-2', 'ev-3', 'ev-4', 'ev-5']);
    expect(res.json.events.map((event: Json) => event.outcome)).toEqual([
      'applied',
      'applied',
      'superseded',
      'duplicate',
      'unknown_code',
    ]);
    expect(res.json.events[1]).toEqual({
      cursor: expect.any(String),
      eventId: 'ev-2',
      source: 'webhook',
      type: 'payment.pending_capture',
      paymentId: '9100000001_0',
      statusCode: 9,
      outcome: 'applied',
      reason: expect.any(String),
      deliveries: 1,
      receivedAt: new Date(minute(1)).toISOString(),
      replayOf: null,
    });
    expect(res.json.next).toBe(res.json.events[4].cursor);
  });

  it('pages with the cursor, neither skipping nor repeating an event', async () => {
    await seed();
    const seen: string[] = [];
    let cursor = '0';
    for (let page = 0; page < 5; page++) {
      const res = await api(`?after=${cursor}&limit=2`);
      expect(res.json.events.length).toBeLessThanOrEqual(2);
      seen.push(...ids(res.json));
      cursor = res.json.next;
      if (res.json.events.length < 2) break;
    }
    expect(seen).toEqual(['ev-1', 'ev-2', 'ev-3', 'ev-4', 'ev-5']);
    const end = await api(`?after=${cursor}`);
    expect(end.json).toEqual({ events: [], next: cursor });
  });

  it('filters by outcome and by type', async () => {
    await seed();
    expect(ids((await api('?outcome=superseded')).json)).toEqual(['ev-3']);
    expect(ids((await api('?outcome=unknown_code')).json)).toEqual(['ev-5']);
    expect(ids((await api('?type=payment.odd')).json)).toEqual(['ev-5']);
  });

  it('filters by receipt time, both ends inclusive', async () => {
    await seed();
    const since = new Date(minute(1)).toISOString();
    const until = new Date(minute(3)).toISOString();
    expect(ids((await api(`?since=${since}&until=${until}`)).json)).toEqual(['ev-2', 'ev-3', 'ev-4']);
    expect(ids((await api(`?since=2026-11-27T11:03:00%2B01:00`)).json)).toEqual(['ev-4', 'ev-5']);
  });

  it('pages through a filtered listing', async () => {
    await seed();
    const first = await api('?outcome=applied&limit=1');
    expect(ids(first.json)).toEqual(['ev-1']);
    const second = await api(`?outcome=applied&limit=1&after=${first.json.next}`);
    expect(ids(second.json)).toEqual(['ev-2']);
  });

  it('needs the bearer token', async () => {
    const res = await fetch(`${web.url}/v1/events`);
    expect(res.status).toBe(401);
  });

  describe('rejects a bad query with 400 naming the field', () => {
    it.each([
      ['an unknown outcome', '?outcome=lost', 'outcome'],
      ['limit 0', '?limit=0', 'limit'],
      ['limit over 1000', '?limit=1001', 'limit'],
      ['a limit that is not a number', '?limit=ten', 'limit'],
      ['a since that is not a datetime', '?since=yesterday', 'since'],
      ['an until before since', '?since=2026-11-27T10:00:00Z&until=2026-11-27T09:00:00Z', 'until'],
      ['a cursor it never gave out', '?after=bm90LWEtY3Vyc29y', 'after'],
      ['an unknown parameter', '?paymentid=x', 'paymentid'],
    ])('%s', async (_name, query, field) => {
      const res = await api(query);
      expect(res.status).toBe(400);
      expect(res.json).toMatchObject({ error: 'invalid_request', field });
      expect(res.json.message).toContain(field);
    });
  });
});
