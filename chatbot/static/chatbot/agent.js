/* Switchboard agent console. One socket to /ws/agent/ (session auth) carries every inbox the
 * agent works plus triage. Texts are rendered with textContent, never as HTML.
 */
(function () {
  "use strict";

  var myTeams = JSON.parse(document.getElementById("ag-teams").textContent);
  var mayTriage = true; // until the socket's inbox frame says
  var MANY_TEAMS = 8; // beyond this many teams, empty team inboxes are folded away
  var socketUrl = window.location.origin.replace(/^http/, "ws") + "/ws/agent/";
  var conversations = {}; // id -> summary
  var messages = {}; // id -> [message]
  var noIntent = {}; // message id -> true: carries no intent (the model's answer or "not a request")
  var unread = {};
  var online = {};
  var current = null;
  var socket = null;
  var attempts = 0;
  var lastTypingSent = 0;
  var typingTimer = null;
  var lastErrorCode = null;
  var retriedEndedSession = false;

  function $(id) {
    return document.getElementById(id);
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function newClientId() {
    if (window.crypto && window.crypto.randomUUID) return window.crypto.randomUUID();
    return Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  }

  function isMine(summary) {
    if (summary.status !== "open") return false;
    if (summary.triage || summary.waiting) return mayTriage;
    return myTeams.some(function (team) {
      return team.slug === summary.team;
    });
  }

  function describe(summary) {
    var parts = [];
    if (summary.waiting) parts.push("no request yet");
    if (summary.reason && summary.reason !== "routed" && !summary.waiting) parts.push(summary.reason.replace(/_/g, " "));
    if (summary.language && summary.language !== "en") parts.push("language: " + summary.language);
    if (summary.predicted_team_name) {
      var pct = summary.confidence === null ? "" : " " + Math.round(summary.confidence * 100) + "%";
      parts.push("predicted " + summary.predicted_team_name + pct);
    } else {
      parts.push("no prediction");
    }
    if (summary.model_version) parts.push("model v" + summary.model_version);
    return parts.join(" · ");
  }

  // ----- inbox column -----
  function renderInboxes() {
    var nav = $("ag-inboxes");
    nav.textContent = "";
    var sections = myTeams.map(function (team) {
      return { key: team.slug, title: team.name, team: team.slug };
    });
    if (mayTriage) sections.push({ key: "triage", title: "Triage", team: null });
    // No intent yet (a greeting, "are you there?"): in no team's inbox until the customer says more.
    if (mayTriage) sections.push({ key: "waiting", title: "Waiting", team: null, waiting: true });
    // Many teams (a staff agent works them all): empty team inboxes fold into one line.
    var quiet = [];
    if (myTeams.length > MANY_TEAMS) {
      sections = sections.filter(function (section) {
        var keep = !section.team || Object.keys(conversations).some(function (id) {
          var c = conversations[id];
          return isMine(c) && c.team === section.team && !c.triage && !c.waiting;
        });
        if (!keep) quiet.push(section.title);
        return keep;
      });
    }
    sections.forEach(function (section) {
      var box = el("div", "ag-inbox");
      box.setAttribute("data-inbox", section.key);
      box.appendChild(el("h2", "", section.title));
      if (section.team) {
        var who = online[section.team] || [];
        box.appendChild(el("div", "ag-online", who.length ? "online: " + who.join(", ") : ""));
      }
      var list = el("ul", "ag-list");
      Object.keys(conversations)
        .map(function (id) {
          return conversations[id];
        })
        .filter(function (c) {
          if (!isMine(c)) return false;
          if (section.waiting) return c.waiting;
          return section.team ? c.team === section.team && !c.triage : c.triage;
        })
        .sort(function (a, b) {
          return a.updated_at < b.updated_at ? 1 : -1;
        })
        .forEach(function (c) {
          list.appendChild(renderItem(c));
        });
      box.appendChild(list);
      nav.appendChild(box);
    });
    if (quiet.length) {
      var folded = el("div", "ag-quiet", quiet.length + " more team inboxes are empty");
      folded.setAttribute("title", quiet.join(", "));
      nav.appendChild(folded);
    }
  }

  function renderItem(summary) {
    var item = el("li", "ag-item");
    item.setAttribute("data-conversation", String(summary.id));
    if (current === summary.id) item.classList.add("ag-active");
    if (unread[summary.id]) item.classList.add("ag-unread");
    item.appendChild(el("div", "ag-preview", "#" + summary.id + " " + (summary.preview || "")));
    item.appendChild(el("div", "ag-meta", describe(summary)));
    item.addEventListener("click", function () {
      openConversation(summary.id);
    });
    return item;
  }

  // ----- conversation view -----
  function openConversation(id) {
    current = id;
    unread[id] = false;
    $("ag-empty").hidden = true;
    $("ag-conversation").hidden = false;
    $("ag-typing").hidden = true;
    renderHeader();
    renderLog();
    renderInboxes();
    send({ type: "open", conversation_id: id });
  }

  function renderHeader() {
    var summary = conversations[current];
    if (!summary) return;
    $("ag-title").textContent =
      "Conversation #" + summary.id + " — " +
      (summary.waiting ? "Waiting" : summary.triage ? "Triage" : summary.team_name || summary.team);
    $("ag-meta").textContent = describe(summary) + (summary.status === "closed" ? " · closed" : "");
  }

  function renderLog() {
    var log = $("ag-log");
    log.textContent = "";
    (messages[current] || []).forEach(function (message) {
      var node = el("div", "ag-msg ag-" + message.sender + (message.pending ? " ag-pending" : ""));
      if (message.author) node.appendChild(el("div", "ag-author", message.author));
      node.appendChild(el("div", "", message.text));
      log.appendChild(node);
      // Beside the bubble, not in it: the bubble's text stays the customer's own.
      if (message.sender === "customer" && message.id) log.appendChild(notRequestControl(message));
    });
    log.scrollTop = log.scrollHeight;
  }

  // A customer message an agent can mark "not a request": it becomes a no-intent training ticket.
  function notRequestControl(message) {
    var tools = el("div", "ag-msg-tools");
    if (noIntent[message.id]) {
      tools.appendChild(el("span", "ag-no-intent", "no intent"));
      return tools;
    }
    var button = el("button", "ag-not-request", "Not a request");
    tools.appendChild(button);
    button.type = "button";
    button.title = "Small talk, not a request: teach the model, and route on the other messages";
    button.addEventListener("click", function () {
      send({ type: "not_a_request", conversation_id: message.conversation_id, message_id: message.id });
    });
    return tools;
  }

  function markNoIntent(frame) {
    noIntent[frame.message_id] = true;
    if (current === frame.conversation_id) renderLog();
  }

  function addMessage(message) {
    var list = (messages[message.conversation_id] = messages[message.conversation_id] || []);
    for (var i = 0; i < list.length; i++) {
      var same = list[i].id === message.id || (message.client_id && list[i].client_id === message.client_id);
      if (same) {
        list[i] = message;
        return false;
      }
    }
    list.push(message);
    return true;
  }

  function upsert(summary) {
    conversations[summary.id] = summary;
  }

  function showError(text) {
    var box = $("ag-error");
    box.textContent = text;
    box.hidden = !text;
  }

  // ----- socket -----
  function send(frame) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(frame));
      return true;
    }
    showError("Not connected; reconnecting…");
    return false;
  }

  var handlers = {
    // Sent at connect and again whenever the agent's teams or triage right change.
    inbox: function (frame) {
      myTeams = frame.teams;
      mayTriage = frame.triage !== false;
      retriedEndedSession = false;
      conversations = {};
      frame.conversations.forEach(upsert);
      renderInboxes();
      if (current !== null) openConversation(current);
    },
    "conversation.assigned": function (frame) {
      upsert(frame.conversation);
      messages[frame.conversation.id] = frame.messages;
      if (current !== frame.conversation.id) unread[frame.conversation.id] = true;
      else (renderHeader(), renderLog());
      renderInboxes();
    },
    "conversation.waiting": function (frame) {
      upsert(frame.conversation);
      messages[frame.conversation.id] = frame.messages;
      renderInboxes();
    },
    "conversation.updated": function (frame) {
      upsert(frame.conversation);
      if (current === frame.conversation.id) renderHeader();
      renderInboxes();
    },
    history: function (frame) {
      (frame.no_intent_ids || []).forEach(function (id) {
        noIntent[id] = true;
      });
      upsert(frame.conversation);
      messages[frame.conversation.id] = frame.messages;
      if (current === frame.conversation.id) (renderHeader(), renderLog());
    },
    message: function (frame) {
      var added = addMessage(frame);
      if (conversations[frame.conversation_id]) conversations[frame.conversation_id].updated_at = frame.created_at;
      if (current === frame.conversation_id) {
        $("ag-typing").hidden = true;
        renderLog();
      } else if (added && frame.sender === "customer") {
        unread[frame.conversation_id] = true;
      }
      renderInboxes();
    },
    ack: function (frame) {
      (messages[frame.conversation_id] || []).forEach(function (message) {
        if (message.client_id === frame.client_id) {
          message.pending = false;
          message.id = frame.message_id;
        }
      });
      if (current === frame.conversation_id) renderLog();
    },
    marked: markNoIntent,
    "message.marked": markNoIntent,
    presence: function (frame) {
      online[frame.team] = frame.online;
      renderInboxes();
    },
    typing: function (frame) {
      if (frame.conversation_id !== current) return;
      var box = $("ag-typing");
      box.textContent = frame.sender === "customer" ? "Customer is typing…" : (frame.author || "A colleague") + " is typing…";
      box.hidden = false;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () {
        box.hidden = true;
      }, 4000);
    },
    error: function (frame) {
      lastErrorCode = frame.code;
      showError(frame.detail || frame.code);
    },
  };

  function connect() {
    socket = new WebSocket(socketUrl);
    socket.onopen = function () {
      attempts = 0;
      lastErrorCode = null;
      $("ag-conn").textContent = "online";
      $("ag-conn").classList.add("ag-ok");
      showError("");
    };
    socket.onmessage = function (event) {
      var frame = JSON.parse(event.data);
      if (handlers[frame.type]) handlers[frame.type](frame);
    };
    socket.onclose = function (event) {
      $("ag-conn").textContent = "offline";
      $("ag-conn").classList.remove("ag-ok");
      // A session ended by a login or password change in another tab: this tab's cookie may be
      // the new session's, so try once before giving up.
      if (event.code === 4403 && lastErrorCode === "session_ended" && !retriedEndedSession) {
        retriedEndedSession = true;
        setTimeout(connect, 500);
        return;
      }
      if (event.code === 4401 || event.code === 4403) {
        showError("You are logged out or no longer an agent: log in at /agent/login/ and reload.");
        return;
      }
      var ceiling = Math.min(30000, 500 * Math.pow(2, attempts));
      attempts += 1;
      setTimeout(connect, ceiling / 2 + Math.random() * (ceiling / 2));
    };
  }

  // ----- actions -----
  $("ag-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = $("ag-input");
    var text = input.value.trim();
    if (!text || current === null) return;
    var message = { conversation_id: current, sender: "agent", text: text, client_id: newClientId(), pending: true };
    if (!send({ type: "reply", conversation_id: current, text: text, client_id: message.client_id })) return;
    addMessage(message);
    input.value = "";
    renderLog();
  });
  $("ag-input").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("ag-form").requestSubmit();
    }
  });
  $("ag-input").addEventListener("input", function () {
    var now = Date.now();
    if (current !== null && now - lastTypingSent > 2000 && send({ type: "typing", conversation_id: current })) {
      lastTypingSent = now;
    }
  });
  $("ag-reassign").addEventListener("click", function () {
    if (current !== null) send({ type: "reassign", conversation_id: current, team: $("ag-team-select").value });
  });
  $("ag-close").addEventListener("click", function () {
    if (current !== null) send({ type: "close", conversation_id: current });
  });

  renderInboxes();
  connect();
})();
