// Live status without reload: live.poll(url, apply) fetches the JSON at url every 1.5 s and hands it to
// apply(data); polling stops once apply returns false (what it shows reached a terminal state). A failed
// fetch or a non-2xx answer is tried again on the next tick.
window.live = {
  poll(url, apply, everyMs = 1500) {
    async function tick() {
      let again = true;
      try {
        const response = await fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"});
        if (response.ok) again = apply(await response.json()) !== false;
      } catch (e) { /* the next tick tries again */ }
      if (again) setTimeout(tick, everyMs);
    }
    setTimeout(tick, everyMs);
  },
};
