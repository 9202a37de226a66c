import type { VerifyLogResponse } from "@evc-interop/gen/evc/national/v1/audit_service_pb";
import { useState } from "preact/hooks";
import { errorText, type Hub } from "../hub.js";

/** Verifies the hash chain of the sealed log on demand (it reads every event: not polled). */
export function Chain(props: { hub: Hub }) {
  const [result, setResult] = useState<VerifyLogResponse>();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const verify = async () => {
    setBusy(true);
    setError(undefined);
    try {
      setResult(await props.hub.audit.verifyLog({}));
    } catch (err) {
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <section>
      <button type="button" disabled={busy} onClick={() => void verify()}>
        {busy ? "Verifying…" : "Verify the log"}
      </button>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {result && (
        <p class={result.ok ? "ok" : "error"} data-chain={result.ok ? "intact" : "broken"}>
          {result.ok
            ? `Intact: ${result.eventsVerified} events verified, up to position ${result.lastPosition}.`
            : `BROKEN at position ${result.firstBrokenPosition} (${result.eventsVerified} events verified): follow the runbook's verify-log section.`}
        </p>
      )}
    </section>
  );
}
