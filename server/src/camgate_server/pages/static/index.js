"use strict";
// Sign in, then go where the account belongs (or to ?next=, a path on this server only).

function destination(account) {
  const next = new URLSearchParams(window.location.search).get("next");
  if (next && next.startsWith("/") && !next.startsWith("//") && !next.includes("\\")) return next;
  return account.role === "owner" ? "/portal" : "/console";
}

(async () => {
  const account = await loadSession();
  if (account) window.location.replace(destination(account));
})();

onSubmit(
  "sign-in",
  "sign-in-error",
  async (form) => {
    const session = await api("POST", API.session, {
      username: form.username.value.trim().toLowerCase(),
      password: form.password.value,
    });
    window.location.assign(destination(session.account));
  },
  (failure) => (failure.status === 401 ? "Wrong username or password." : problemText(failure)),
);
