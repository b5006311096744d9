"""POST /api/v1/tickets now needs the finetune.add_ticket permission (routing.api_support.
CanIngestTickets). Users who already held an API token before that keep ingesting, so no running
integration breaks on upgrade; staff revoke it in the admin where a token should only route.
A fresh database has no tokens and nothing to grant."""

from django.db import migrations


def grant(apps, schema_editor):
    Token = apps.get_model("authtoken", "Token")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.filter(content_type__app_label="finetune", codename="add_ticket").first()
    if permission is None:  # a new database: permissions are created after its first migrate
        return
    for token in Token.objects.select_related("user").filter(user__is_superuser=False):
        token.user.user_permissions.add(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("finetune", "0001_initial"),
        ("authtoken", "0004_alter_tokenproxy_options"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
