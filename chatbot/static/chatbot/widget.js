/* Switchboard chat widget. Embed with:
 *   <script src="https://HOST/static/chatbot/widget.js" data-server="https://HOST"></script>
 * Vanilla JS, no build step. Every text is rendered with textContent, never as HTML.
 * The conversation token and an outbox of unacknowledged messages live in localStorage: a
 * reload restores the history, and messages written while offline are resent on reconnect
 * with the same client_id, so the server stores each exactly once. Until the token arrives every
 * message also carries a random conversation key (kept there too): a first message resent after
 * its answer was lost finds the conversation it started instead of starting a second one.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var server = ((script && script.getAttribute("data-server")) || window.location.origin).replace(/\/+$/, "");
  var socketBase = server.replace(/^http/, "ws") + "/ws/chat/";
  var storageKey = "switchboard-chat:" + server;
  var TYPING_EVERY_MS = 2000;
  var TYPING_SHOWN_MS = 4000;

  var saved = load();
  var socket = null;
  var ready = false; // history received: the socket is bound to a conversation we know
  var attempts = 0;
  var reconnectTimer = null;
  var retryTimer = null;
  var unread = 0;
  var lastTypingSent = 0;
  var typingTimer = null;
  var rendered = {}; // message id -> element, so echoes and history never double a bubble

  function load() {
    try {
      var value = JSON.parse(window.localStorage.getItem(storageKey) || "{}");
      var outbox = Array.isArray(value.outbox) ? value.outbox : [];
      return { token: value.token || null, key: value.key || null, outbox: outbox };
    } catch (err) {
      return { token: null, key: null, outbox: [] };
    }
  }

  function save() {
    try {
      window.localStorage.setItem(storageKey, JSON.stringify(saved));
    } catch (err) {
      /* storage full or disabled: the chat still works for this page view */
    }
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function newClientId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  // 32 random bytes, base64url: a secret only this browser knows (null without crypto: no key, like older widgets).
  function newConversationKey() {
    if (!(window.crypto && window.crypto.getRandomValues)) return null;
    var bytes = window.crypto.getRandomValues(new Uint8Array(32));
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return window.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function messageFrame(item) {
    var frame = { type: "message", text: item.text, client_id: item.client_id };
    if (!saved.token) {
      saved.key = saved.key || newConversationKey();
      save();
      if (saved.key) frame.conversation_key = saved.key;
    }
    return frame;
  }

  // ----- DOM -----
  var css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = server + "/static/chatbot/widget.css";
  document.head.appendChild(css);

  var root = el("div", "sb-root");
  var launcher = el("button", "sb-launcher", "Chat with us");
  launcher.type = "button";
  launcher.setAttribute("aria-label", "Open support chat");
  var badge = el("span", "sb-badge", "");
  badge.hidden = true;
  launcher.appendChild(badge);
  var panel = el("section", "sb-panel");
  panel.hidden = true;
  panel.setAttribute("aria-label", "Support chat");
  var header = el("header", "sb-header");
  header.appendChild(el("strong", "", "Support"));
  var teamLine = el("div", "sb-team", "Ask us anything: we'll find the right team.");
  header.appendChild(teamLine);
  var closeButton = el("button", "sb-close", "\u00d7");
  closeButton.type = "button";
  closeButton.setAttribute("aria-label", "Close chat");
  header.appendChild(closeButton);
  var status = el("div", "sb-status", "");
  var log = el("div", "sb-log");
  log.setAttribute("role", "log");
  log.setAttribute("aria-live", "polite");
  var typing = el("div", "sb-typing", "Support is typing\u2026");
  typing.hidden = true;
  var form = el("form", "sb-form");
  var input = el("textarea", "sb-input");
  input.rows = 2;
  input.placeholder = "Type your message\u2026";
  input.maxLength = 5000;
  var send = el("button", "sb-send", "Send");
  send.type = "submit";
  form.appendChild(input);
  form.appendChild(send);
  panel.appendChild(header);
  panel.appendChild(status);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(form);
  root.appendChild(panel);
  root.appendChild(launcher);

  function mount() {
    document.body.appendChild(root);
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);

  // ----- rendering -----
  function scrollDown() {
    log.scrollTop = log.scrollHeight;
  }

  function bubble(sender, text, author) {
    var node = el("div", "sb-msg sb-" + sender);
    if (sender === "agent" && author) node.appendChild(el("div", "sb-author", author));
    node.appendChild(el("div", "sb-text", text));
    return node;
  }

  function renderMessage(message) {
    if (rendered[message.id]) return false;
    var pending = message.client_id && log.querySelector('[data-client-id="' + cssEscape(message.client_id) + '"]');
    if (pending && message.sender === "customer") {
      pending.classList.remove("sb-pending");
      rendered[message.id] = pending;
      return false;
    }
    var node = bubble(message.sender, message.text, message.author);
    if (message.client_id) node.setAttribute("data-client-id", message.client_id);
    rendered[message.id] = node;
    log.appendChild(node);
    scrollDown();
    return true;
  }

  function renderPending(item) {
    var node = bubble("customer", item.text);
    node.classList.add("sb-pending");
    node.setAttribute("data-client-id", item.client_id);
    log.appendChild(node);
    scrollDown();
  }

  function cssEscape(value) {
    return window.CSS && window.CSS.escape ? window.CSS.escape(value) : value.replace(/["\\]/g, "\\$&");
  }

  function showTeam(frame) {
    if (frame.team_name && !frame.triage) teamLine.textContent = "You're talking to " + frame.team_name;
    // Triage, or waiting again (an agent marked the message it was routed on "not a request").
    else if (log.children.length) teamLine.textContent = "Finding the right team for you\u2026";
  }

  function setUnread(count) {
    unread = count;
    badge.textContent = String(count);
    badge.hidden = count === 0;
  }

  function showStatus(text) {
    status.textContent = text;
    status.hidden = !text;
  }

  // ----- socket -----
  function connect() {
    if (socket) return;
    clearTimeout(reconnectTimer);
    var url = socketBase + (saved.token ? "?token=" + encodeURIComponent(saved.token) : "");
    socket = new WebSocket(url);
    ready = false;
    socket.onmessage = function (event) {
      var frame;
      try {
        frame = JSON.parse(event.data);
      } catch (err) {
        return;
      }
      var handler = handlers[frame.type];
      if (handler) handler(frame);
    };
    socket.onclose = function () {
      socket = null;
      ready = false;
      showStatus("Reconnecting\u2026");
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    // Exponential backoff with full jitter, capped: a server restart is not stampeded.
    var ceiling = Math.min(30000, 500 * Math.pow(2, attempts));
    attempts += 1;
    reconnectTimer = setTimeout(connect, ceiling / 2 + Math.random() * (ceiling / 2));
  }

  function sendFrame(frame) {
    if (socket && ready && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    return false;
  }

  // The server answered for this message (ack or final refusal): out of the outbox, not pending.
  function settle(clientId) {
    saved.outbox = saved.outbox.filter(function (item) {
      return item.client_id !== clientId;
    });
    save();
    var node = log.querySelector('[data-client-id="' + cssEscape(clientId) + '"]');
    if (node) node.classList.remove("sb-pending");
    return node;
  }

  function flushOutbox() {
    saved.outbox.forEach(function (item) {
      sendFrame(messageFrame(item));
    });
  }

  var handlers = {
    conversation: function (frame) {
      saved.token = frame.token;
      saved.key = null; // the token speaks for the conversation from now on
      save();
    },
    history: function (frame) {
      ready = true;
      attempts = 0;
      showStatus("");
      log.textContent = "";
      rendered = {};
      var stored = {};
      frame.messages.forEach(function (message) {
        renderMessage(message);
        if (message.client_id) stored[message.client_id] = true;
      });
      // Stored but never acknowledged (the ack was lost): already in the history.
      saved.outbox = saved.outbox.filter(function (item) {
        return !stored[item.client_id];
      });
      save();
      saved.outbox.forEach(renderPending);
      showTeam(frame);
      flushOutbox();
    },
    ack: function (frame) {
      var node = settle(frame.client_id);
      if (node) rendered[frame.message_id] = node;
    },
    message: function (frame) {
      typing.hidden = true;
      var added = renderMessage(frame);
      if (added && frame.sender !== "customer" && (panel.hidden || document.hidden)) setUnread(unread + 1);
    },
    routed: showTeam,
    typing: function () {
      typing.hidden = false;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () {
        typing.hidden = true;
      }, TYPING_SHOWN_MS);
    },
    error: function (frame) {
      if (frame.code === "conversation_closed" || frame.code === "bad_token") {
        // Start afresh; the outbox is kept, so what the customer wrote goes to the new conversation.
        saved.token = null;
        saved.key = null;
        save();
        teamLine.textContent = "Starting a new conversation\u2026";
        if (socket) socket.close();
        return;
      }
      if (frame.code === "rate_limited") {
        clearTimeout(retryTimer);
        retryTimer = setTimeout(flushOutbox, 3000);
      } else if (frame.client_id) {
        // Refused for good (too long, empty, malformed): resending it would fail forever.
        var failed = settle(frame.client_id);
        if (failed) {
          failed.classList.add("sb-failed");
          failed.title = "Not sent: " + (frame.detail || frame.code);
        }
      }
      showStatus(frame.detail || frame.code);
    },
  };

  // ----- user actions -----
  function open() {
    panel.hidden = false;
    launcher.classList.add("sb-open");
    setUnread(0);
    connect();
    input.focus();
  }

  launcher.addEventListener("click", function () {
    if (panel.hidden) open();
    else panel.hidden = true;
  });
  closeButton.addEventListener("click", function () {
    panel.hidden = true;
    launcher.classList.remove("sb-open");
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    var item = { client_id: newClientId(), text: text };
    saved.outbox.push(item);
    save();
    renderPending(item);
    input.value = "";
    if (!sendFrame(messageFrame(item))) connect();
  });

  input.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - lastTypingSent > TYPING_EVERY_MS && sendFrame({ type: "typing" })) lastTypingSent = now;
  });

  // A returning customer gets their history (and unread replies) without opening the panel.
  if (saved.token || saved.outbox.length) connect();

  window.SwitchboardChat = { open: open };
})();
