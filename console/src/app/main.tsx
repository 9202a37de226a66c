import { MigrationState } from "@evc-interop/gen/evc/national/v1/migration_service_pb";
import { render } from "preact";
import { useMemo, useState } from "preact/hooks";
import { hubClients } from "./hub.js";
import { loadSession, type Session, saveSession } from "./session.js";
import { Chain } from "./views/chain.js";
import { Directives } from "./views/directives.js";
import { Migrations } from "./views/migrations.js";
import { Person } from "./views/person.js";
import { Provinces } from "./views/provinces.js";
import { SignIn } from "./views/sign-in.js";

const TABS = ["Stuck", "Migrations", "Directives", "Provinces", "Person", "Chain"] as const;
type Tab = (typeof TABS)[number];

function App() {
  const [session, setSession] = useState(loadSession);
  const [notice, setNotice] = useState<string>();
  const [tab, setTab] = useState<Tab>("Stuck");
  const signIn = (s: Session | undefined, why?: string) => {
    saveSession(s);
    setSession(s);
    setNotice(why);
  };
  const hub = useMemo(
    () =>
      session &&
      hubClients(session.token, () =>
        signIn(undefined, "The hub no longer accepts your token: sign in again."),
      ),
    [session],
  );
  if (!session || !hub) return <SignIn onSignIn={(s) => signIn(s)} notice={notice} />;
  const operator = session.subject.startsWith("operator:");
  const tabs = TABS.filter((t) => operator || t !== "Person");
  return (
    <>
      <header>
        <h1>evc-interop · national hub</h1>
        <span class="who" data-subject={session.subject}>
          {session.subject} {operator ? "" : "(read only)"} · token until{" "}
          {session.expiresAt.toISOString().slice(11, 19)} UTC
        </span>
        <button type="button" onClick={() => signIn(undefined)}>
          Sign out
        </button>
      </header>
      <nav>
        {tabs.map((t) => (
          <button
            type="button"
            class={t === tab ? "current" : ""}
            aria-pressed={t === tab}
            onClick={() => setTab(t)}
          >
            {t}
          </button>
        ))}
      </nav>
      <main>
        {tab === "Stuck" && (
          <Migrations
            key="stuck"
            hub={hub}
            canAct={operator}
            initialState={MigrationState.NEEDS_OPERATOR}
          />
        )}
        {tab === "Migrations" && <Migrations key="all" hub={hub} canAct={operator} />}
        {tab === "Directives" && <Directives hub={hub} canAct={operator} />}
        {tab === "Provinces" && <Provinces />}
        {tab === "Person" && <Person hub={hub} />}
        {tab === "Chain" && <Chain hub={hub} />}
      </main>
    </>
  );
}

const root = document.getElementById("root");
if (root) render(<App />, root);
