// A real upstream OpenID provider for the tests: panva/oidc-provider (nobody here wrote it),
// configured like an internet bank. Started by tests/providers/conftest.py; every setting
// comes from the environment:
//
//   PEER_PORT            loopback port to listen on (required)
//   PEER_CLIENT_ID       the one confidential client (client_secret_basic) ...
//   PEER_CLIENT_SECRET   ... and its secret; a second client "<id>-post" with the same
//                        secret authenticates with client_secret_post
//   PEER_REDIRECT_URIS   comma-separated redirect URIs registered for both clients
//   PEER_ACCOUNTS        JSON {accountId: {claims..., "acr": "...", "amr": [...]}}; the
//                        login form accepts any of these ids (no password)
//   PEER_LOOPBACK_REDIRECTS=1  also accept any http://127.0.0.1:<port>/... or
//                        http://localhost[:port]/... redirect URI (apps under test listen on
//                        ports chosen at run time); the exact-match rule is the peer's, not
//                        what we test
//
// The browser steps are plain HTML over real HTTP: GET /interaction/<uid> shows a login form
// (POST /interaction/<uid>/login with `login=<accountId>`) and a cancel link
// (GET /interaction/<uid>/abort -> error=access_denied). Consent is granted on login
// (a bank asks no consent of its own customers' identity claims). PKCE S256 is required.
import * as http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT);
if (!port) {
  console.error('PEER_PORT is required');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const clientId = process.env.PEER_CLIENT_ID || 'idp-test';
const clientSecret = process.env.PEER_CLIENT_SECRET || 'idp-test-secret-0123456789abcdef';
const redirectUris = (process.env.PEER_REDIRECT_URIS || 'http://localhost/callback')
  .split(',').map((s) => s.trim()).filter(Boolean);
const accounts = JSON.parse(process.env.PEER_ACCOUNTS || '{}');

const IDENTITY_CLAIMS = ['personal_code', 'serial_number', 'given_name', 'family_name', 'name'];

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_basic',
      // So the ID token always reports the login's acr (oidc-provider only includes acr
      // when acr_values or the claims parameter ask for it), as the banks we model do.
      default_acr_values: ['urn:bank:substantial', 'urn:bank:high'],
    },
    {
      client_id: `${clientId}-post`,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'client_secret_post',
      default_acr_values: ['urn:bank:substantial', 'urn:bank:high'],
    },
  ],
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    profile: IDENTITY_CLAIMS,
  },
  // The identity claims go into the ID token itself (a bank's usual habit), not only userinfo.
  conformIdTokenClaims: false,
  acrValues: ['urn:bank:substantial', 'urn:bank:high'],
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: true },
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  async findAccount(ctx, sub) {
    const account = accounts[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        const { acr, amr, ...claims } = account;
        return { sub, ...claims };
      },
    };
  },
  cookies: { keys: ['idp-test-peer-cookie-key'] },
  ttl: { Session: 3600, Interaction: 600, AuthorizationCode: 60, IdToken: 600, AccessToken: 600 },
  renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});

if (process.env.PEER_LOOPBACK_REDIRECTS === '1') {
  const registered = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function redirectUriAllowed(value) {
    let url;
    try { url = new URL(value); } catch { return false; }
    const loopback = url.protocol === 'http:'
      && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname) && !url.hash;
    return loopback || registered.call(this, value);
  };
}

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new Error('interaction mismatch');
  if (action === 'abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User cancelled the login',
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (action === 'login' && req.method === 'POST') {
    const form = await readForm(req);
    const accountId = form.get('login') || '';
    const account = accounts[accountId];
    if (!account) {
      res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('unknown account');
      return;
    }
    // Consent for what was asked, so no consent page follows.
    const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
    grant.addOIDCScope(String(details.params.scope || 'openid'));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, {
      login: { accountId, acr: account.acr, amr: account.amr },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
    return;
  }
  // GET: the login page.
  res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(`<!doctype html><title>Test bank sign-in</title>
<form method="post" action="/interaction/${escape(uid)}/login">
<input name="login" required placeholder="account id"><button type="submit">Sign in</button>
</form>
<a id="cancel" href="/interaction/${escape(uid)}/abort">Cancel</a>`);
}

const handler = provider.callback();
const server = http.createServer((req, res) => {
  const match = /^\/interaction\/([^/?]+)(?:\/(login|abort))?(?:\?.*)?$/.exec(req.url);
  if (!match) {
    handler(req, res);
    return;
  }
  interaction(req, res, match[1], match[2]).catch((err) => {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`interaction failed: ${err.message}`);
  });
});
server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-peer listening on ${issuer}`);
});
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
