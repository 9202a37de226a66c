import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A test PKI made with openssl: a CA, a server certificate for 127.0.0.1, client certificates. */
export interface TestPki {
  dir: string;
  /** Paths of the CA certificate, the server's certificate and key. */
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  /** A client certificate (and key) whose subject CN is `cn`, signed by the CA. */
  client(cn: string): { cert: Buffer; key: Buffer; certFile: string; keyFile: string };
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function issue(dir: string, name: string, cn: string, ext: string, ca = "ca"): void {
  const curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(dir, [
    "req",
    ...curve,
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/CN=${cn}`,
  ]);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.crt`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
  ]);
}

/** Makes a fresh CA (or `caName` for a second, untrusted one) and a server certificate. */
export function makeTestPki(caName = "evc test CA"): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "evc-pki-"));
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    "ca.key",
    "-out",
    "ca.crt",
    "-days",
    "2",
    "-subj",
    `/CN=${caName}`,
  ]);
  issue(
    dir,
    "server",
    "localhost",
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
  );
  const read = (f: string) => readFileSync(join(dir, f));
  let n = 0;
  return {
    dir,
    caFile: join(dir, "ca.crt"),
    serverCertFile: join(dir, "server.crt"),
    serverKeyFile: join(dir, "server.key"),
    ca: read("ca.crt"),
    serverCert: read("server.crt"),
    serverKey: read("server.key"),
    client(cn) {
      n += 1;
      const name = `client${n}`;
      issue(dir, name, cn, "extendedKeyUsage=clientAuth\n");
      return {
        cert: read(`${name}.crt`),
        key: read(`${name}.key`),
        certFile: join(dir, `${name}.crt`),
        keyFile: join(dir, `${name}.key`),
      };
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
