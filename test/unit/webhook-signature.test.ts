import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { webhooks } from 'onlinepayments-sdk-nodejs';
import { parseWebhookBody } from '../../schemas';
import {
  parseKeyRing,
  SignatureError,
  signWebhookBody,
  verifyWebhookSignature,
  type KeyRing,
  type SignatureErrorReason,
} from '../../src/platform/webhook-signature';

const FIXTURES = path.join(__dirname, '../fixtures');

type WebhookVector = {
  file: string;
  appendBytes?: string;
  keyId: string;
  secret: string;
  signature: string;
  expect: string;
  bytes: number;
  sha256: string;
};

const vectors = (
  JSON.parse(readFileSync(path.join(FIXTURES, 'vectors.json'), 'utf8')) as { webhook: WebhookVector[] }
).webhook;

function fixture(file: string, appendBytes = ''): Buffer {
  return Buffer.concat([readFileSync(path.join(FIXTURES, file)), Buffer.from(appendBytes, 'utf8')]);
}

function hmac(body: Buffer | string, secret: string): string {
  return createHmac('sha256', secret).update(body).digest('base64');
}

function failureOf(run: () => unknown): SignatureErrorReason {
  try {
    run();
  } catch (error) {
    if (error instanceof SignatureError) return error.reason;
    throw error;
  }
  throw new Error('expected a SignatureError, but verification passed');
}

const KEY_ID = 'dummy-key-id';
const SECRET = 'hello+world';
const ring: KeyRing = new Map([[KEY_ID, SECRET]]);
const validBody = fixture('sdk-java_webhooks_helper-valid-body');
const validSignature = hmac(validBody, SECRET);

describe('verifyWebhookSignature with the SDK test vectors', () => {
  it.each(vectors.map((v) => [`${v.file}${v.appendBytes ? ' + appended bytes' : ''}: ${v.expect}`, v]))(
    '%s',
    (_name, v) => {
      const body = fixture(v.file, v.appendBytes);
      expect(body.length).toBe(v.bytes);
      expect(createHash('sha256').update(body).digest('hex')).toBe(v.sha256);
      const vectorRing = new Map([[v.keyId, v.secret]]);
      const verify = () =>
        verifyWebhookSignature(body, { signature: v.signature, keyId: v.keyId }, vectorRing);
      if (v.expect.startsWith('invalid')) {
        expect(failureOf(verify)).toBe('invalid_signature');
      } else {
        expect(verify()).toEqual({ keyId: v.keyId });
      }
    },
  );
});

describe('signWebhookBody', () => {
  it('gives the standard base64 HMAC-SHA256 of a Buffer', () => {
    expect(signWebhookBody(validBody, SECRET)).toBe('2S7doBj/GnJnacIjSJzr5fxGM5xmfQyFAwxv1I53ZEk=');
  });

  it('signs a string as its UTF-8 bytes', () => {
    const text = '{"note":"größe"}';
    expect(signWebhookBody(text, SECRET)).toBe(hmac(Buffer.from(text, 'utf8'), SECRET));
  });
});

describe('verifyWebhookSignature', () => {
  it('accepts a valid delivery and returns its key id', () => {
    expect(verifyWebhookSignature(validBody, { signature: validSignature, keyId: KEY_ID }, ring)).toEqual({
      keyId: KEY_ID,
    });
  });

  it('accepts both keys while two are active (rotation), each under its own key id', () => {
    const rotating: KeyRing = new Map([
      ['old-key', 'old+secret/=='],
      ['new-key', 'new:secret+/='],
    ]);
    const oldSig = hmac(validBody, 'old+secret/==');
    const newSig = hmac(validBody, 'new:secret+/=');
    expect(verifyWebhookSignature(validBody, { signature: oldSig, keyId: 'old-key' }, rotating)).toEqual({
      keyId: 'old-key',
    });
    expect(verifyWebhookSignature(validBody, { signature: newSig, keyId: 'new-key' }, rotating)).toEqual({
      keyId: 'new-key',
    });
  });

  describe('rejects …', () => {
    const verify = (body: Buffer, signature: string | undefined, keyId: string | undefined, keys = ring) =>
      failureOf(() => verifyWebhookSignature(body, { signature, keyId }, keys));

    it('a missing signature', () => {
      expect(verify(validBody, undefined, KEY_ID)).toBe('missing_signature');
    });

    it('an empty signature', () => {
      expect(verify(validBody, '', KEY_ID)).toBe('missing_signature');
    });

    it('a missing key id', () => {
      expect(verify(validBody, validSignature, undefined)).toBe('missing_key_id');
    });

    it('an unknown key id', () => {
      expect(verify(validBody, validSignature, 'other-key-id')).toBe('unknown_key_id');
    });

    it('a tampered body', () => {
      const tampered = Buffer.from(
        validBody.toString('utf8').replace('"amount": 1000', '"amount": 1'),
        'utf8',
      );
      expect(tampered.equals(validBody)).toBe(false);
      expect(verify(tampered, validSignature, KEY_ID)).toBe('invalid_signature');
    });

    it('a body with a trailing newline added', () => {
      expect(verify(Buffer.concat([validBody, Buffer.from('\n')]), validSignature, KEY_ID)).toBe(
        'invalid_signature',
      );
    });

    it('a signature made with the wrong secret', () => {
      expect(verify(validBody, hmac(validBody, 'wrong-secret'), KEY_ID)).toBe('invalid_signature');
    });

    it("one active key's signature presented under the other key's id", () => {
      const rotating: KeyRing = new Map([
        ['old-key', 'old-secret'],
        ['new-key', 'new-secret'],
      ]);
      expect(verify(validBody, hmac(validBody, 'new-secret'), 'old-key', rotating)).toBe('invalid_signature');
    });

    it('a duplicated signature header joined with ", "', () => {
      expect(verify(validBody, `${validSignature}, ${validSignature}`, KEY_ID)).toBe('invalid_signature');
    });

    it('a duplicated key id header joined with ", "', () => {
      expect(verify(validBody, validSignature, `${KEY_ID}, ${KEY_ID}`)).toBe('unknown_key_id');
    });

    it('a signature that is too short, with a SignatureError only', () => {
      expect(verify(validBody, validSignature.slice(0, 10), KEY_ID)).toBe('invalid_signature');
    });

    it('a signature that is far too long, with a SignatureError only', () => {
      expect(verify(validBody, validSignature.repeat(200), KEY_ID)).toBe('invalid_signature');
    });

    it('non-base64 garbage', () => {
      expect(verify(validBody, '!!! not base64 at all ~~~ \u00ff\u0000', KEY_ID)).toBe('invalid_signature');
    });

    it('the right digest in a non-canonical encoding (no padding)', () => {
      expect(verify(validBody, validSignature.replace(/=+$/, ''), KEY_ID)).toBe('invalid_signature');
    });
  });

  it('never puts the secret or the received signature in its error messages', () => {
    const forged = hmac(validBody, 'forger');
    const messages = [
      [undefined, KEY_ID],
      [forged, undefined],
      [forged, 'unknown'],
      [forged, KEY_ID],
    ].map(([signature, keyId]) => {
      try {
        verifyWebhookSignature(validBody, { signature, keyId }, ring);
      } catch (error) {
        return (error as Error).message;
      }
      return 'no error';
    });
    for (const message of messages) {
      expect(message).not.toBe('no error');
      expect(message).not.toContain(SECRET);
      expect(message).not.toContain(forged);
    }
  });

  it('sets name and reason on SignatureError', () => {
    const error = new SignatureError('invalid_signature', 'x');
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('SignatureError');
    expect(error.reason).toBe('invalid_signature');
  });
});

describe('parseKeyRing', () => {
  it('splits each entry on its first colon, so secrets keep + / = and :', () => {
    const keys = parseKeyRing('k1:ab+c/d==:e:f, k2 : xyz=');
    expect([...keys.entries()]).toEqual([
      ['k1', 'ab+c/d==:e:f'],
      ['k2', 'xyz='],
    ]);
  });

  it('gives a ring that verifies real deliveries', () => {
    const keys = parseKeyRing(` other:x , ${KEY_ID}:${SECRET} `);
    expect(verifyWebhookSignature(validBody, { signature: validSignature, keyId: KEY_ID }, keys)).toEqual({
      keyId: KEY_ID,
    });
  });

  describe('rejects …', () => {
    const secret = 'Sup3r+Secr3t/Value==';
    it.each([
      ['an entry without a colon', `k1:abc,${secret}`, /entry 2 of 2/],
      ['an entry with an empty key id', `:${secret}`, /entry 1 of 1/],
      ['an entry with an empty secret', `k1:${secret},k2:`, /entry 2 of 2/],
      ['a repeated key id', `k1:${secret},k2:x,k1:${secret}`, /entry 3 of 3/],
      ['an empty entry (trailing comma)', `k1:${secret},`, /entry 2 of 2/],
      ['an empty spec', '  ', /key ring is empty/],
    ])('%s, saying where, never the secret', (_name, spec, position) => {
      let message = 'no error';
      try {
        parseKeyRing(spec);
      } catch (error) {
        expect(error).toBeInstanceOf(Error);
        message = (error as Error).message;
      }
      expect(message).toMatch(position);
      expect(message).not.toContain(secret);
    });
  });
});

describe('agrees with the official SDK helper (webhooks.init → unmarshal)', () => {
  const sdkHelper = webhooks.init({
    getSecretKey: (keyId) => {
      const secret = ring.get(keyId);
      return secret === undefined ? Promise.reject(new Error('unknown key id')) : Promise.resolve(secret);
    },
  });

  async function sdkAccepts(body: Buffer, signature: string, keyId: string): Promise<boolean> {
    try {
      await sdkHelper.unmarshal(body, { 'X-GCS-Signature': signature, 'X-GCS-KeyId': keyId });
      return true;
    } catch {
      return false;
    }
  }

  function weAccept(body: Buffer, signature: string, keyId: string): boolean {
    try {
      verifyWebhookSignature(body, { signature, keyId }, ring);
    } catch (error) {
      if (error instanceof SignatureError) return false;
      throw error;
    }
    return parseWebhookBody(JSON.parse(body.toString('utf8'))).ok;
  }

  const v0Body = fixture('sdk-dotnet_WebhooksHelperTest_BadVersionJson.body');
  const tamperedBody = fixture('sdk-java_webhooks_helper-invalid-body');

  it.each([
    { name: 'the valid body', body: validBody, signature: validSignature, keyId: KEY_ID, accepted: true },
    {
      name: 'a tampered body',
      body: tamperedBody,
      signature: validSignature,
      keyId: KEY_ID,
      accepted: false,
    },
    {
      name: 'a body with a trailing newline added',
      body: Buffer.concat([validBody, Buffer.from('\n')]),
      signature: validSignature,
      keyId: KEY_ID,
      accepted: false,
    },
    {
      name: 'a delivery signed with another secret',
      body: validBody,
      signature: hmac(validBody, 'another-secret'),
      keyId: KEY_ID,
      accepted: false,
    },
    {
      name: 'an unknown key id',
      body: validBody,
      signature: validSignature,
      keyId: 'unknown',
      accepted: false,
    },
    {
      name: 'a duplicated signature header joined with ", "',
      body: validBody,
      signature: `${validSignature}, ${validSignature}`,
      keyId: KEY_ID,
      accepted: false,
    },
    {
      name: 'a validly signed apiVersion v0 body',
      body: v0Body,
      signature: hmac(v0Body, SECRET),
      keyId: KEY_ID,
      accepted: false,
    },
  ])('$name: both give accepted = $accepted', async ({ body, signature, keyId, accepted }) => {
    expect(weAccept(body, signature, keyId)).toBe(accepted);
    await expect(sdkAccepts(body, signature, keyId)).resolves.toBe(accepted);
  });

  describe('known differences', () => {
    it('we accept a validly signed JSON array body, which the SDK refuses as an API version mismatch', async () => {
      const arrayBody = Buffer.from(`[${validBody.toString('utf8')}]`, 'utf8');
      const signature = hmac(arrayBody, SECRET);
      expect(weAccept(arrayBody, signature, KEY_ID)).toBe(true);
      await expect(
        sdkHelper.unmarshal(arrayBody, { 'X-GCS-Signature': signature, 'X-GCS-KeyId': KEY_ID }),
      ).rejects.toMatchObject({ name: 'ApiVersionMismatchError' });
    });

    it('we refuse an envelope with no payload object, which the SDK accepts', async () => {
      const bare = fixture('sdk-java_webhooks_valid-body');
      const signature = hmac(bare, SECRET);
      expect(weAccept(bare, signature, KEY_ID)).toBe(false);
      await expect(sdkAccepts(bare, signature, KEY_ID)).resolves.toBe(true);
    });

    it('the SDK puts the received signature in its error message (ours never does, tested above)', async () => {
      const forged = hmac(validBody, 'forger');
      await expect(
        sdkHelper.unmarshal(validBody, { 'X-GCS-Signature': forged, 'X-GCS-KeyId': KEY_ID }),
      ).rejects.toThrow(forged);
    });
  });
});
