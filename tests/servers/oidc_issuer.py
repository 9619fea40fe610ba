"""A small OpenID Connect issuer for the API tests, built on jwcrypto.

It serves a discovery document and a JWKS on 127.0.0.1, and mints signed access
tokens on request, so the daemon's JWT checks are exercised by an independent JOSE
implementation rather than by Lifeboat's own code. Started by tests/api_oidc.rs with
the Python of the venv tests/run.sh installs jwcrypto into; prints its port on the
first line of stdout.

Routes:
  GET  /.well-known/openid-configuration   issuer and jwks_uri
  GET  /jwks                                the public keys (counted, see /stats)
  GET  /mint?alg=RS256|ES256|EdDSA&sub=S&roles=a,b&exp_in=SECONDS&nbf_in=SECONDS
            [&iss=OTHER][&aud=OTHER]        a signed token
  GET  /mint-hs256-public-key?sub=S&roles=a  HS256 keyed with the RSA public key (an attack)
  POST /rotate                              replace the RSA key with a new one (new kid)
  GET  /stats                               {"jwks_fetches": n}
"""

import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from jwcrypto import jwk, jwt

AUDIENCE = "lifeboat-api"


class Issuer:
    def __init__(self):
        self.rsa_generation = 1
        self.keys = {
            "RS256": jwk.JWK.generate(kty="RSA", size=2048, kid="rsa-1", use="sig"),
            "ES256": jwk.JWK.generate(kty="EC", crv="P-256", kid="ec-1", use="sig"),
            "EdDSA": jwk.JWK.generate(kty="OKP", crv="Ed25519", kid="ed-1", use="sig"),
        }
        self.jwks_fetches = 0
        self.url = ""

    def rotate(self):
        self.rsa_generation += 1
        kid = f"rsa-{self.rsa_generation}"
        self.keys["RS256"] = jwk.JWK.generate(kty="RSA", size=2048, kid=kid, use="sig")

    def public_set(self):
        keys = jwk.JWKSet()
        for key in self.keys.values():
            keys.add(key)
        return keys.export(private_keys=False, as_dict=True)

    def claims(self, q):
        now = int(time.time())
        roles = [r for r in q.get("roles", [""])[0].split(",") if r]
        return {
            "iss": q.get("iss", [self.url])[0],
            "aud": q.get("aud", [AUDIENCE])[0],
            "sub": q.get("sub", ["client"])[0],
            "iat": now,
            "exp": now + int(q.get("exp_in", ["300"])[0]),
            "nbf": now + int(q.get("nbf_in", ["0"])[0]),
            "lifeboat_roles": roles,
        }

    def mint(self, q):
        alg = q.get("alg", ["RS256"])[0]
        key = self.keys[alg]
        token = jwt.JWT(header={"alg": alg, "kid": key.get("kid"), "typ": "JWT"}, claims=self.claims(q))
        token.make_signed_token(key)
        return token.serialize()

    def mint_hs256_with_public_key(self, q):
        public_pem = self.keys["RS256"].export_to_pem(private_key=False)
        secret = jwk.JWK.from_password(public_pem.decode())
        token = jwt.JWT(header={"alg": "HS256", "kid": self.keys["RS256"].get("kid")}, claims=self.claims(q))
        token.make_signed_token(secret)
        return token.serialize()


ISSUER = Issuer()


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, body, kind="application/json"):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        q = parse_qs(url.query)
        if url.path == "/.well-known/openid-configuration":
            doc = {"issuer": ISSUER.url, "jwks_uri": ISSUER.url + "/jwks"}
            self.reply(200, json.dumps(doc))
        elif url.path == "/jwks":
            ISSUER.jwks_fetches += 1
            self.reply(200, json.dumps(ISSUER.public_set()))
        elif url.path == "/mint":
            self.reply(200, ISSUER.mint(q), "text/plain")
        elif url.path == "/mint-hs256-public-key":
            self.reply(200, ISSUER.mint_hs256_with_public_key(q), "text/plain")
        elif url.path == "/stats":
            self.reply(200, json.dumps({"jwks_fetches": ISSUER.jwks_fetches}))
        else:
            self.reply(404, "{}")

    def do_POST(self):
        if urlparse(self.path).path == "/rotate":
            ISSUER.rotate()
            self.reply(200, json.dumps({"kid": ISSUER.keys["RS256"].get("kid")}))
        else:
            self.reply(404, "{}")

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    ISSUER.url = f"http://127.0.0.1:{port}"
    print(port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
