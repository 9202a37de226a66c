import { useState } from "preact/hooks";
import { type Session, sessionOf } from "../session.js";

/** Paste a token from `evc-operator token`; the hub checks it at every call. */
export function SignIn(props: { onSignIn: (s: Session) => void; notice?: string | undefined }) {
  const [token, setToken] = useState("");
  const [problem, setProblem] = useState<string>();
  const submit = (e: Event) => {
    e.preventDefault();
    const s = sessionOf(token);
    if (typeof s === "string") setProblem(s);
    else props.onSignIn(s);
  };
  return (
    <form class="sign-in" onSubmit={submit}>
      <h1>evc-interop operator console</h1>
      {props.notice && <p class="notice">{props.notice}</p>}
      <label for="token">Operator token</label>
      <textarea
        id="token"
        name="token"
        rows={5}
        spellcheck={false}
        autocomplete="off"
        value={token}
        onInput={(e) => setToken(e.currentTarget.value)}
      />
      <p class="hint">
        Make one with <code>evc-operator token</code> (your key, kid <code>operator:NAME</code> or{" "}
        <code>viewer:NAME</code>). It lasts at most 15 minutes and stays in this tab.
      </p>
      {problem && (
        <p class="error" role="alert">
          {problem}
        </p>
      )}
      <button type="submit">Sign in</button>
    </form>
  );
}
