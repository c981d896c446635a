package dkim

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// RSA key sizes accepted. RFC 8301 §3.2: signers SHOULD use at least 2048
// bits, and verifiers need only handle up to 4096, so a larger key risks
// failing at receivers.
const (
	MinRSABits = 2048
	MaxRSABits = 4096
)

// LoadKey reads a PEM private key file (see ParseKey). Errors name the
// file.
func LoadKey(path string) (crypto.Signer, error) {
	if path == "" {
		return nil, errors.New("dkim: key_file is empty")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("dkim: key file: %w", err)
	}
	k, err := ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("dkim: key file %s: %w", path, err)
	}
	return k, nil
}

// ParseKey parses a PEM private key: RSA in PKCS#1 ("RSA PRIVATE KEY") or
// PKCS#8 ("PRIVATE KEY") form, or Ed25519 in PKCS#8 form (RFC 8410).
func ParseKey(data []byte) (crypto.Signer, error) {
	var block *pem.Block
	for rest := data; ; {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		if strings.HasSuffix(block.Type, "PRIVATE KEY") {
			break
		}
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "ENCRYPTED PRIVATE KEY":
		return nil, errors.New("key is encrypted; store it unencrypted with restricted file permissions")
	default:
		return nil, fmt.Errorf("unsupported PEM block %q (want PRIVATE KEY or RSA PRIVATE KEY)", block.Type)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
			return nil, fmt.Errorf("RSA key has %d bits; DKIM needs %d to %d (RFC 8301)", bits, MinRSABits, MaxRSABits)
		}
		if err := k.Validate(); err != nil {
			return nil, err
		}
		k.Precompute()
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported key type %T: DKIM signs with rsa or ed25519", key)
	}
}

// GenerateRSA makes an RSA key of bits (2048 to 4096) and returns it as
// PKCS#8 PEM with the TXT record to publish at selector._domainkey.domain.
func GenerateRSA(bits int) (pemKey []byte, txtRecord string, err error) {
	if bits < MinRSABits || bits > MaxRSABits {
		return nil, "", fmt.Errorf("dkim: RSA key size %d: want %d to %d bits", bits, MinRSABits, MaxRSABits)
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return nil, "", fmt.Errorf("dkim: generate RSA key: %w", err)
	}
	return encode(k)
}

// GenerateEd25519 makes an Ed25519 key (RFC 8463) and returns it as PKCS#8
// PEM with the TXT record to publish.
func GenerateEd25519() (pemKey []byte, txtRecord string, err error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("dkim: generate Ed25519 key: %w", err)
	}
	return encode(k)
}

func encode(k crypto.Signer) ([]byte, string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, "", fmt.Errorf("dkim: encode key: %w", err)
	}
	txt, err := PublicRecord(k)
	if err != nil {
		return nil, "", err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), txt, nil
}

// PublicRecord is the DKIM key record (RFC 6376 §3.6.1) for key's public
// half: an RSA SubjectPublicKeyInfo, or the raw 32-byte Ed25519 key (RFC
// 8463 §4.2). Records longer than 255 bytes must be published as several
// strings of one TXT record.
func PublicRecord(key crypto.Signer) (string, error) {
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", fmt.Errorf("dkim: encode public key: %w", err)
		}
		return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
	case ed25519.PublicKey:
		return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub), nil
	default:
		return "", fmt.Errorf("dkim: unsupported key type %T: DKIM signs with rsa or ed25519", pub)
	}
}

// checkName accepts a domain or selector: dot-separated labels of 1-63
// letters, digits, hyphens or underscores.
func checkName(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if len(s) > 253 {
		return fmt.Errorf("%q is longer than 253 characters", s)
	}
	for _, l := range strings.Split(s, ".") {
		if l == "" || len(l) > 63 {
			return fmt.Errorf("%q has an empty or over-long label", s)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%q: character %q not allowed", s, c)
			}
		}
	}
	return nil
}
