// Stops the shared control plane once the last project using it is done.
export default async function teardown() {
  const shared = globalThis.__cascade;
  if (!shared) return;
  shared.users--;
  if (shared.users > 0) return;
  await shared.controlPlane?.stop();
  shared.controlPlane = undefined;
}
