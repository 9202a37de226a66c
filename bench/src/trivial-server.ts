#!/usr/bin/env node
import { create } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import {
  ControlService,
  GetFeaturesResponseSchema,
} from "@evc-interop/gen/evc/conformance/v1/control_service_pb";
import { listen } from "@evc-interop/runtime";

/**
 * The benchmark's trivial Connect server, run in a process of its own like a province, so the
 * trivial-call baseline has the same layout as the status reads it bounds (client in the
 * bench process, server in another). Prints its URL on the first line of stdout.
 */
const handler = connectNodeAdapter({
  routes: (router: ConnectRouter) => {
    router.service(ControlService, {
      getFeatures: () => create(GetFeaturesResponseSchema, { implementationName: "trivial" }),
    });
  },
});
const server = await listen(handler, "127.0.0.1", 0);
process.stdout.write(`${server.url}\n`);
process.once("SIGTERM", () => {
  void server.close(0).then(() => process.exit(0));
});
