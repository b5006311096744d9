"""Agent access changes, pushed to open console sockets at once.

Whatever can end or change what an agent may do (their account flags or password, deletion, team
membership, a team's creation, edit or deletion, permissions on them or their groups, their
session ending) sends ``agent.access_changed``
to the group ``agent.<user id>`` once it commits. Every console socket of that user is in that
group; it re-reads its access (chatbot.selectors.agent_access_get) and closes, or narrows or widens
its inbox subscriptions to match. Bulk ``QuerySet.update`` sends no signal: every agent action
re-reads the access too, so such a change holds from the agent's next action.
"""

from __future__ import annotations

from typing import Any, Iterable

from django.contrib.auth import SESSION_KEY, get_user_model, user_logged_out
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from chatbot import broadcast, services
from routing.models import Team
from routing.teams import team_merged

AGENT_ACCESS_EVENT = "agent.access_changed"
# A user save that names only other fields (update_fields, e.g. last_login at login) changes no access.
ACCESS_FIELDS = frozenset({"is_active", "is_staff", "is_superuser", "password"})


def agent_group(user_id: object) -> str:
    """The group every console socket of this user joins."""
    return f"agent.{user_id}"


def agent_access_changed(*, user_ids: Iterable[object], session_ended: str | None = None) -> None:
    """Tell these users' console sockets to re-read their access, once the transaction commits.

    ``session_ended`` names a session that is over whatever the store still says (a logout sends
    this before the session is flushed): the sockets opened with it close.
    """
    event = {"type": AGENT_ACCESS_EVENT, "session_ended": session_ended}
    for user_id in {str(user_id) for user_id in user_ids}:
        broadcast.broadcast_on_commit(agent_group(user_id), event)


def _user_saved(sender, instance, created: bool, update_fields=None, **kwargs: Any) -> None:
    if created or (update_fields is not None and not ACCESS_FIELDS & set(update_fields)):
        return
    agent_access_changed(user_ids=[instance.pk])


def _user_deleted(sender, instance, **kwargs: Any) -> None:
    agent_access_changed(user_ids=[instance.pk])


def _session_deleted(sender, instance, **kwargs: Any) -> None:
    user_id = instance.get_decoded().get(SESSION_KEY)
    if user_id is not None:
        agent_access_changed(user_ids=[user_id], session_ended=instance.session_key)


def _logged_out(sender, request, user, **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if user is not None and session is not None:
        agent_access_changed(user_ids=[user.pk], session_ended=session.session_key)


def _team_changed(sender, instance, **kwargs: Any) -> None:
    """A team created, edited, (de)activated or deleted: its members' inboxes and every staff
    member's (staff work all active teams) may have changed."""
    users = get_user_model()._default_manager
    staff = users.filter(is_staff=True, is_active=True).values_list("pk", flat=True)
    members = instance.members.values_list("pk", flat=True) if instance.pk else []
    agent_access_changed(user_ids=[*staff, *members])


def _linked_ids(through, instance, model) -> set:
    """The ``model`` rows ``instance`` is linked to in the ``through`` table (before a clear)."""
    source = next(f.name for f in through._meta.fields if f.is_relation and f.related_model is type(instance))
    target = next(f.attname for f in through._meta.fields if f.is_relation and f.related_model is model)
    return set(through.objects.filter(**{source: instance.pk}).values_list(target, flat=True))


def _users_affected(instance, model, pk_set: set | None) -> set:
    """Whose access an m2m change of Team.members, User.groups, User.user_permissions or Group.permissions touches."""
    user_model = get_user_model()
    if isinstance(instance, user_model):
        return {instance.pk}
    if model is user_model:  # team.members, group.user_set, permission.user_set
        return set(pk_set or ())
    groups = {instance.pk} if isinstance(instance, Group) else set(pk_set or ())
    return set(user_model._default_manager.filter(groups__in=groups).values_list("pk", flat=True))


def _links_changed(sender, instance, action: str, model, pk_set: set | None, **kwargs: Any) -> None:
    if action == "pre_clear":  # afterwards the links are gone: remember whom they concerned
        instance._agent_access_cleared = _users_affected(instance, model, _linked_ids(sender, instance, model))
    elif action == "post_clear":
        agent_access_changed(user_ids=instance.__dict__.pop("_agent_access_cleared", ()))
    elif action in ("post_add", "post_remove") and pk_set:
        agent_access_changed(user_ids=_users_affected(instance, model, pk_set))


def _team_merged(sender, team, into, **kwargs: Any) -> None:
    services.conversations_move_team(team=team, into=into)


def receivers_connect() -> None:
    """Connect the receivers (ChatbotConfig.ready); connecting twice changes nothing."""
    user_model = get_user_model()
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="agent_access_user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid="agent_access_user_deleted")
    post_delete.connect(_session_deleted, sender=Session, dispatch_uid="agent_access_session_deleted")
    user_logged_out.connect(_logged_out, dispatch_uid="agent_access_logged_out")
    team_merged.connect(_team_merged, dispatch_uid="chat_team_merged")
    post_save.connect(_team_changed, sender=Team, dispatch_uid="agent_access_team_saved")
    pre_delete.connect(_team_changed, sender=Team, dispatch_uid="agent_access_team_deleted")  # members still there
    links = [Team.members.through, Group.permissions.through]
    links += [getattr(user_model, name).through for name in ("groups", "user_permissions") if hasattr(user_model, name)]
    for through in links:
        m2m_changed.connect(_links_changed, sender=through, dispatch_uid=f"agent_access_{through._meta.label}")
