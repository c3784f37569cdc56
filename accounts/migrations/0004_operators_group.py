"""The "operators" group: what a staff user needs to run the service from the admin.

Staff users get their permissions through this group, not one by one (accounts.services puts
every staff user in it). Operators see jobs and act on them (cancel, retry, requeue, delete:
the `change_job` permission), see users and their spending, manage API tokens and profiles.
They cannot change users (no making oneself a superuser) nor edit job rows by hand.
"""

from __future__ import annotations

from django.db import migrations

GROUP = "operators"
# (app_label, codename): a frozen copy, as migrations must not depend on code that changes later.
PERMISSIONS = [
    ("jobs", "view_job"), ("jobs", "change_job"), ("jobs", "view_task"), ("jobs", "view_webhookdelivery"),
    ("accounts", "view_user"), ("accounts", "view_apitoken"), ("accounts", "add_apitoken"),
    ("accounts", "change_apitoken"), ("accounts", "view_spendentry"),
    ("analysis", "view_analysisprofile"), ("analysis", "add_analysisprofile"),
    ("analysis", "change_analysisprofile"), ("analysis", "delete_analysisprofile"),
]


def create_operators(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # On a fresh database the permissions do not exist yet (post_migrate creates them after the
    # last migration): create them now, for the apps this group needs.
    for label in {label for label, _ in PERMISSIONS}:
        config = apps.get_app_config(label)
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    User = apps.get_model("accounts", "User")
    group, _ = Group.objects.get_or_create(name=GROUP)
    for label, codename in PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=label, codename=codename))
    for user in User.objects.filter(is_staff=True):
        user.groups.add(group)


def remove_operators(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_monthly_budget_sub_cent"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("jobs", "0003_task_last_error"),
        ("analysis", "0002_builtin_profiles"),
    ]
    operations = [migrations.RunPython(create_operators, remove_operators)]
