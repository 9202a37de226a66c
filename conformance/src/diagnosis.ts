/** What to check, for the error a call to the province last ended with. */
export function hint(err: unknown): string {
  const text = String(err);
  if (/ECONNREFUSED/.test(text))
    return "nothing listens there: check province.url / control_url and that the province started";
  if (/NGHTTP2|protocol error|HPE_|wrong version number|Stream closed|unexpected/i.test(text))
    return "the server speaks another protocol: set province.protocol (grpc, connect, grpc-web) and http_version to what it serves, and https:// for TLS";
  if (/certificate|self[- ]signed|SSL|TLS/i.test(text))
    return "TLS failed: check province.ca_file, client_cert and client_key";
  if (/deadline|timed? ?out/i.test(text))
    return "it accepted the connection but never answered: check that it serves evc.conformance.v1.ControlService";
  if (/unimplemented|404/i.test(text))
    return "it does not serve evc.conformance.v1.ControlService at that URL (control_url?)";
  return "check province.url, control_url, protocol and control_token";
}
