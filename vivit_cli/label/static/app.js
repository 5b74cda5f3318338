// vivit label: the page. The server holds every answer and decides what comes next; this script shows one video,
// sends each key as a request, and polls for the head's new suggestions. Nothing here is lost by a reload.
"use strict";

const csrf = document.querySelector('meta[name="csrf"]').content;
const $ = (id) => document.getElementById(id);
const player = $("player");
const POLL_MS = 1500; // how often the page asks whether the suggestions or the figures have moved

let index = Number(document.querySelector('meta[name="video"]').content);
let view = null; // the current video as /api/video/N gave it
let status = null; // /api/status: labels, counts, figures, what comes next
let busy = false; // an answer is on its way: keys wait for it

function percent(x) {
  return `${(100 * x).toFixed(0)}%`;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error || response.statusText);
  return response.json();
}

async function post(action, body) {
  const response = await fetch(`/api/${action}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-Vivit-CSRF": csrf },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(answer.error || response.statusText);
  return answer;
}

function say(text, failed = false) {
  const save = $("save");
  save.textContent = text;
  save.classList.toggle("failed", failed);
}

// Showing

async function show(i, push = true, given = null) {
  index = i;
  if (push && location.pathname !== `/v/${i}`) history.pushState(null, "", `/v/${i}`);
  const [v, s] = given || (await Promise.all([getJSON(`/api/video/${i}`), getJSON(`/api/status?current=${i}`)]));
  if (index !== i) return; // a later key moved on meanwhile
  view = v;
  status = s;
  setMedia(v.media);
  render();
  // Where the model looked probes the file: asked for once the video is on screen.
  getJSON(`/api/looked/${i}`)
    .then((looked) => {
      if (index === i && view) {
        view.looked = looked;
        renderLooked(view);
      }
    })
    .catch(() => {});
}

function setMedia(url) {
  if (player.dataset.src === url) return;
  player.dataset.src = url;
  player.src = url;
  player.play().catch(() => {}); // muted autoplay is allowed; a refusal leaves the play button
}

player.addEventListener("error", () => {
  // The browser cannot play the original after all: the preview is made for it.
  if (view && player.dataset.src !== view.preview) setMedia(view.preview);
});

function render() {
  const v = view;
  const s = status;
  $("path").textContent = v.path;
  $("project").textContent = s.project;
  $("answered").textContent = `${s.answered} of ${s.total} answered`;
  const e = s.embedding;
  const doing = e.state === "embedding" ? "" : ` (${e.state})`;
  $("embedding").textContent =
    e.state === "done" ? `${e.done - e.failed} embedded` : `embedded ${e.done} of ${e.total}${doing}`;
  $("embedding").classList.toggle("failed", e.state.startsWith("error"));
  $("accuracy").textContent = s.accuracy
    ? `accuracy ${percent(s.accuracy.value)} (${s.accuracy.folds}-fold, ${s.accuracy.answers} answers)`
    : "accuracy: after two answers each for two labels";
  renderSuggestion(v);
  renderLabels(v, s);
  renderLooked(v);
  renderStrip(s);
  const notes = [];
  if (v.answer) notes.push(`Answered: ${v.answer}. A new answer replaces it.`);
  if (v.skipped) notes.push("Skipped earlier.");
  if (v.error) notes.push(`Not embedded: ${v.error}`);
  else if (!v.embedded) notes.push("Not embedded yet: no suggestion for it until it is.");
  $("notice").textContent = notes.join(" ");
  $("notice").hidden = notes.length === 0;
  $("prev").disabled = v.prev === null;
  $("next").disabled = v.next === null;
}

function renderSuggestion(v) {
  const top = v.suggestion;
  $("suggestion").textContent = top ? top.label : "none yet";
  const by = { head: "trained on your answers", model: "the model's own label", nearest: "like an answered video" };
  $("score").textContent = top ? `${percent(top.score)} · ${by[top.by]}` : "";
  $("accept").disabled = !top;
  $("others").textContent = v.others.length
    ? `Then: ${v.others.map((o) => `${o.label} ${percent(o.score)}`).join(", ")}`
    : "";
}

function renderLabels(v, s) {
  $("labels").replaceChildren(
    ...s.labels.map((label, n) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "label";
      button.classList.toggle("chosen", v.answer === label.name);
      if (n < 9) button.append(Object.assign(document.createElement("kbd"), { textContent: String(n + 1) }));
      button.append(Object.assign(document.createElement("span"), { className: "name", textContent: label.name }));
      button.append(Object.assign(document.createElement("span"), { className: "count", textContent: label.count }));
      button.addEventListener("click", () => answer(label.name));
      li.append(button);
      return li;
    }),
  );
}

function renderLooked(v) {
  const bar = $("looked");
  const clips = v.looked ? v.looked.clips : [];
  bar.replaceChildren(
    ...clips.map(([start, end]) => {
      const span = document.createElement("span");
      span.style.left = percent(start / v.looked.duration_s);
      span.style.width = `${Math.max(0.5, (100 * (end - start)) / v.looked.duration_s)}%`;
      return span;
    }),
  );
  const preview = player.dataset.src === v.preview;
  bar.dataset.caption = preview
    ? "Preview: the frames the model saw"
    : v.looked
      ? `The model looked at ${clips.length} clip${clips.length === 1 ? "" : "s"} of ${v.looked.duration_s.toFixed(1)} s`
      : "";
}

function renderStrip(s) {
  $("strip").replaceChildren(
    ...s.upcoming.map((u) => {
      const li = document.createElement("li");
      const a = Object.assign(document.createElement("a"), { href: `/v/${u.index}`, title: u.path });
      a.addEventListener("click", (event) => {
        event.preventDefault();
        show(u.index);
      });
      const img = Object.assign(document.createElement("img"), { src: `/thumb/${u.index}`, alt: "", loading: "lazy" });
      const caption = Object.assign(document.createElement("span"), {
        textContent: u.suggestion ? u.suggestion.label : "no suggestion yet",
      });
      const name = Object.assign(document.createElement("span"), {
        className: "name",
        textContent: u.path.split("/").pop(),
      });
      a.append(img, caption, name);
      li.append(a);
      return li;
    }),
  );
}

// Answering

async function act(action, body, then) {
  if (busy) return;
  busy = true;
  say("Saving…");
  try {
    const answer = await post(action, body);
    say("Saved");
    if (then) await then(answer);
  } catch (error) {
    say(`Not saved: ${error.message}`, true);
  } finally {
    busy = false;
  }
}

function next(answer) {
  // The answer comes with the next video and the status: drawn at once, without asking again.
  return answer.show === null ? show(index, false) : show(answer.show, true, [answer.video, answer.status]);
}

const answer = (label) => act("answer", { video: index, label }, next);
const accept = () => view && view.suggestion && answer(view.suggestion.label);
const skip = () => act("skip", { video: index }, next);
const undo = () => act("undo", {}, (a) => (a.show === null ? say("Nothing to undo") : next(a)));

function togglePlay() {
  if (player.paused) player.play().catch(() => {});
  else player.pause();
}

$("accept").addEventListener("click", accept);
$("skip").addEventListener("click", skip);
$("undo").addEventListener("click", undo);
$("prev").addEventListener("click", () => view && view.prev !== null && show(view.prev));
$("next").addEventListener("click", () => view && view.next !== null && show(view.next));
$("play").addEventListener("click", togglePlay);
$("help-button").addEventListener("click", () => $("keys").showModal());
$("add-label").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("new-label").value.trim();
  if (name)
    act("labels", { label: name }, async () => {
      $("new-label").value = "";
      await show(index, false);
    });
});

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  const handled = {
    Enter: accept,
    s: skip,
    u: undo,
    ArrowLeft: () => view && view.prev !== null && show(view.prev),
    ArrowRight: () => view && view.next !== null && show(view.next),
    " ": togglePlay,
    "?": () => ($("keys").open ? $("keys").close() : $("keys").showModal()),
  }[key];
  if (handled) {
    event.preventDefault();
    handled();
  } else if (/^[1-9]$/.test(key) && status && status.labels[Number(key) - 1]) {
    event.preventDefault();
    answer(status.labels[Number(key) - 1].name);
  }
});

window.addEventListener("popstate", () => {
  const match = location.pathname.match(/^\/v\/(\d+)$/);
  if (match) show(Number(match[1]), false);
});

async function poll() {
  try {
    const s = await getJSON(`/api/status?current=${index}`);
    if (!busy && status && s.version !== status.version) {
      const fresh = await getJSON(`/api/video/${index}`);
      if (view && fresh.index === view.index) fresh.looked = view.looked;
      view = fresh;
      status = s;
      render();
    }
  } catch (error) {
    say(`The server does not answer: ${error.message}`, true);
  }
}

show(index, false).catch((error) => say(`Could not load the video: ${error.message}`, true));
setInterval(poll, POLL_MS);
