package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt"
)

// jwk is the part of a JSON Web Key this province uses: Ed25519 keys (kty OKP, crv Ed25519),
// x the public key, d the private seed, both base64url without padding.
type jwk struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	Kid string `json:"kid"`
	X   string `json:"x"`
	D   string `json:"d,omitempty"`
}

func decodeB64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// keygen writes a new Ed25519 key pair for province <code>: file (private) and file.pub.
func keygen(code, file string) error {
	public, private, err := ed25519.GenerateKey(nil)
	if err != nil {
		return err
	}
	k := jwk{Kty: "OKP", Crv: "Ed25519", Kid: "province:" + code, X: base64.RawURLEncoding.EncodeToString(public)}
	pub, _ := json.Marshal(k)
	k.D = base64.RawURLEncoding.EncodeToString(private.Seed())
	priv, _ := json.Marshal(k)
	if err := os.WriteFile(file, append(priv, '\n'), 0o600); err != nil {
		return err
	}
	return os.WriteFile(file+".pub", append(pub, '\n'), 0o644)
}

// keySet maps a key id to an Ed25519 public key: the hub's directive keys, the reader issuers.
type keySet map[string]ed25519.PublicKey

func loadKeySet(file string) (keySet, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var set struct{ Keys []jwk }
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("%s: not a JWKS: %v", file, err)
	}
	keys := keySet{}
	for _, k := range set.Keys {
		x, err := decodeB64(k.X)
		if k.Kty != "OKP" || k.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%s: key %q is not an Ed25519 public key", file, k.Kid)
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	return keys, nil
}

// verifyDirective checks the Evc-Signature header (`<key id>:<signature>`) of a directive: the
// hub's Ed25519 signature over the message body exactly as received.
func (keys keySet) verifyDirective(header string, body []byte) error {
	i := strings.LastIndex(header, ":")
	if header == "" || i < 0 {
		return errors.New("no Evc-Signature header")
	}
	key, ok := keys[header[:i]]
	if !ok {
		return fmt.Errorf("signed with unknown key %q", header[:i])
	}
	sig, err := decodeB64(header[i+1:])
	if err != nil || !ed25519.Verify(key, body, sig) {
		return errors.New("signature does not match the body")
	}
	return nil
}

// readerClaims is what a verified reader token grants.
type readerClaims struct {
	scopes map[string]bool
	record string // holder:read: the one record it may read
}

// verifyReader checks a reader token: EdDSA by a trusted issuer (kid), audience
// evc-province:<code>, not expired.
func (keys keySet) verifyReader(token, code string) (*readerClaims, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (interface{}, error) {
		if t.Method != jwt.SigningMethodEdDSA {
			return nil, fmt.Errorf("alg %v is not EdDSA", t.Header["alg"])
		}
		kid, _ := t.Header["kid"].(string)
		if key, ok := keys[kid]; ok {
			return key, nil
		}
		return nil, fmt.Errorf("unknown issuer key %q", kid)
	})
	if err != nil {
		return nil, err
	}
	if !claims.VerifyAudience("evc-province:"+code, true) || !claims.VerifyExpiresAt(time.Now().Unix(), true) {
		return nil, errors.New("token is not for this province or has expired")
	}
	scope, _ := claims["scope"].(string)
	record, _ := claims["evc_record"].(string)
	c := &readerClaims{scopes: map[string]bool{}, record: record}
	for _, s := range strings.Fields(scope) {
		c.scopes[s] = true
	}
	return c, nil
}

// signer makes the province's hub tokens: JWT, EdDSA, kid and sub and iss province:<code>,
// aud evc-hub, five minutes; one is reused until a minute before it expires.
type signer struct {
	kid string
	key ed25519.PrivateKey

	mu      sync.Mutex
	token   string
	renewAt time.Time
}

func loadSigner(file string) (*signer, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var k jwk
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, fmt.Errorf("%s: not a JWK: %v", file, err)
	}
	seed, err := decodeB64(k.D)
	if k.Kty != "OKP" || k.Crv != "Ed25519" || err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%s: not an Ed25519 private JWK (kty OKP, crv Ed25519, d)", file)
	}
	return &signer{kid: k.Kid, key: ed25519.NewKeyFromSeed(seed)}, nil
}

func (s *signer) bearer() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.token != "" && now.Before(s.renewAt) {
		return s.token, nil
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.RegisteredClaims{
		Subject:   s.kid,
		Issuer:    s.kid,
		Audience:  jwt.ClaimStrings{"evc-hub"},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
	})
	t.Header["kid"] = s.kid
	signed, err := t.SignedString(s.key)
	if err != nil {
		return "", err
	}
	s.token, s.renewAt = signed, now.Add(4*time.Minute)
	return signed, nil
}
