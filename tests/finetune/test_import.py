"""tickets_import and the import/export commands: good files, bad files, all-or-nothing."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from chatbot.core.text import text_hash
from finetune.importing import tickets_import
from finetune.models import Ticket
from routing.models import Team

pytestmark = pytest.mark.django_db


def _write(tmp_path, name: str, content: str | bytes):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_csv_import_labels_and_counts_duplicates(tmp_path, teams, staff_user):
    """A CSV imports labelled tickets, stamps the labeller and skips repeated texts."""
    path = _write(
        tmp_path,
        "t.csv",
        "text,team\nI was charged twice,billing\nCan't log in,accounts\n"
        '  i WAS   charged twice ,billing\n"App crashes\non start",bugs\n',
    )
    report = tickets_import(stream_or_path=path, label_column="team", user=staff_user)
    assert report.ok, report.errors
    assert (report.imported, report.duplicates) == (3, 1)
    assert report.per_team == {"Billing": 1, "Accounts": 1, "Bugs": 1}
    ticket = Ticket.objects.get(text="App crashes\non start")
    assert ticket.team.slug == "bugs" and ticket.labelled_by == staff_user
    assert ticket.labelled_at is not None and ticket.source == Ticket.Source.IMPORT


def test_existing_tickets_count_as_duplicates(tmp_path, teams):
    """Texts already stored are skipped, so importing the same file twice adds nothing."""
    path = _write(tmp_path, "t.csv", "text,team\nRefund please,billing\nReset password,accounts\n")
    assert tickets_import(stream_or_path=path, label_column="team").imported == 2
    again = tickets_import(stream_or_path=path, label_column="team")
    assert (again.imported, again.duplicates) == (0, 2)
    assert Ticket.objects.count() == 2


def test_jsonl_import_with_unlabelled_rows(tmp_path, teams):
    """JSONL rows without a label (missing, null or empty) import as unlabelled tickets."""
    lines = [
        {"text": "Where is my invoice?", "team": "billing"},
        {"text": "No label key"},
        {"text": "Null label", "team": None},
        {"text": "Empty label", "team": ""},
    ]
    path = _write(tmp_path, "t.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n\n")
    report = tickets_import(stream_or_path=path, label_column="team")
    assert report.ok and report.imported == 4 and report.unlabelled == 3
    assert Ticket.objects.filter(team__isnull=True, labelled_at__isnull=True).count() == 3


def test_bad_rows_are_reported_with_line_numbers_and_nothing_is_written(tmp_path, teams):
    """Every broken row is listed with its line and reason, and none of the good rows land."""
    long_text = "x" * 100_001
    path = _write(
        tmp_path,
        "t.jsonl",
        '{"text": "fine", "team": "billing"}\n'
        "not json\n"
        '["a", "list"]\n'
        '{"body": "wrong key"}\n'
        '{"text": "   "}\n'
        f'{{"text": "{long_text}"}}\n'
        '{"text": 42}\n'
        '{"text": "bad label", "team": 7}\n',
    )
    report = tickets_import(stream_or_path=path, label_column="team")
    assert not report.ok
    lines = {issue.line for issue in report.errors}
    assert lines == {2, 3, 4, 5, 6, 7, 8}
    messages = " ".join(issue.message for issue in report.errors)
    assert "Invalid JSON" in messages and "Expected a JSON object" in messages
    assert "100000" in messages and "empty" in messages
    assert Ticket.objects.count() == 0


def test_csv_row_with_wrong_field_count_is_reported(tmp_path, teams):
    """A CSV row with too few fields is an error naming its line."""
    path = _write(tmp_path, "t.csv", "text,team\nok,billing\nonly-one-field\n")
    report = tickets_import(stream_or_path=path, label_column="team")
    assert [str(issue) for issue in report.errors] == ["line 3: Row has 1 fields; the header has 2."]
    assert Ticket.objects.count() == 0


def test_wrong_encoding_names_the_byte_offset(tmp_path):
    """A Latin-1 file is refused with the offset and line of the first bad byte."""
    path = _write(tmp_path, "t.csv", "text\nfine\ncaf\u00e9 au lait\n".encode("latin-1"))
    report = tickets_import(stream_or_path=path)
    assert not report.ok
    assert report.errors[0].line == 3 and "offset 13" in report.errors[0].message
    assert "UTF-8" in report.errors[0].message


def test_missing_column_lists_available_columns(tmp_path):
    """Naming a column the file lacks says which columns it has."""
    path = _write(tmp_path, "t.csv", "body,category\nhello,x\n")
    report = tickets_import(stream_or_path=path, text_column="text")
    assert not report.ok
    assert "Column 'text' not found" in report.errors[0].message
    assert "'body', 'category'" in report.errors[0].message


def test_empty_file_is_refused(tmp_path):
    """An empty (or whitespace-only) file is an error, not a silent no-op."""
    report = tickets_import(stream_or_path=_write(tmp_path, "t.csv", " \n"))
    assert not report.ok and "empty" in report.errors[0].message


@override_settings(SWITCHBOARD={"MAX_IMPORT_BYTES": 100})
def test_oversize_file_is_refused_before_reading(tmp_path):
    """A file over MAX_IMPORT_BYTES is refused, from a path or from a stream without a size."""
    path = _write(tmp_path, "t.csv", "text\n" + "hello world\n" * 20)
    assert "limit is 100 bytes" in tickets_import(stream_or_path=path).errors[0].message
    stream = io.BytesIO(path.read_bytes())
    stream.name = "t.csv"
    assert "over the limit" in tickets_import(stream_or_path=stream).errors[0].message
    assert Ticket.objects.count() == 0


def test_unknown_label_without_create_teams_is_an_error(tmp_path, teams):
    """A label that matches no team fails the import and says how to fix it."""
    path = _write(tmp_path, "t.csv", "text,team\na,billing\nb,mobile\nc,mobile\n")
    report = tickets_import(stream_or_path=path, label_column="team")
    assert len(report.errors) == 1
    assert "Label 'mobile' matches no team" in report.errors[0].message
    assert "2 rows; lines 3, 4" in report.errors[0].message
    assert Ticket.objects.count() == 0 and not Team.objects.filter(slug="mobile").exists()


def test_unknown_label_with_create_teams_creates_the_team(tmp_path, teams):
    """With create_teams a new label becomes a team (slugified, titled name)."""
    path = _write(tmp_path, "t.csv", "text,team\nApp crashes on iOS,mobile_app\n")
    report = tickets_import(stream_or_path=path, label_column="team", create_teams=True)
    assert report.ok and report.created_teams == ["Mobile App"]
    team = Team.objects.get(slug="mobile_app")
    assert team.name == "Mobile App" and Ticket.objects.get().team == team


def test_team_map_to_names_and_slugs(tmp_path, teams):
    """A team map sends labels to teams by slug or by name, creating named teams on request."""
    path = _write(tmp_path, "t.csv", "text,intent\nrefund me,refund\nfx rate?,exchange_rate\nbad pin,pin\n")
    mapping = {"refund": "billing", "exchange_rate": "Exchange & FX", "pin": "Accounts"}
    refused = tickets_import(stream_or_path=path, label_column="intent", team_map=mapping)
    assert [issue.line for issue in refused.errors][0] is None
    assert "Team map names team 'Exchange & FX'" in refused.errors[0].message
    report = tickets_import(stream_or_path=path, label_column="intent", team_map=mapping, create_teams=True)
    assert report.ok
    assert Team.objects.get(slug="exchange-fx").name == "Exchange & FX"
    assert Ticket.objects.get(text="bad pin").team.slug == "accounts"


def test_malformed_team_map_is_refused(tmp_path, teams):
    """A team map that is not an object of strings is an error."""
    path = _write(tmp_path, "t.csv", "text,team\na,billing\n")
    report = tickets_import(stream_or_path=path, label_column="team", team_map={"a": 3})
    assert not report.ok and "Team map must be" in report.errors[0].message


def test_hostile_text_is_stored_verbatim(tmp_path):
    """HTML in a ticket is data: stored as written, never stripped or executed."""
    text = "<script>alert('x')</script><img src=x onerror=alert(1)>"
    path = _write(tmp_path, "t.jsonl", json.dumps({"text": text}) + "\n")
    assert tickets_import(stream_or_path=path).ok
    assert Ticket.objects.get().text == text


def test_command_imports_and_prints_summary(tmp_path, teams, capsys):
    """import_tickets prints how many were imported, skipped, and per team."""
    path = _write(tmp_path, "t.csv", "text,label\nhello billing,billing\nhello billing,billing\n")
    call_command("import_tickets", str(path), "--label-column", "label")
    out = capsys.readouterr().out
    assert "Imported 1 tickets; skipped 1 duplicates." in out and "Billing: 1" in out


def test_command_fails_with_line_numbers(tmp_path, teams):
    """On bad rows the command exits with CommandError listing each line."""
    path = _write(tmp_path, "t.csv", "text,label\n,billing\nok,nowhere\n")
    with pytest.raises(CommandError) as caught:
        call_command("import_tickets", str(path), "--label-column", "label")
    assert "line 2:" in str(caught.value) and "line 3:" in str(caught.value)
    assert Ticket.objects.count() == 0


def test_command_reads_team_map_file_and_creates_teams(tmp_path):
    """--team-map and --create-teams work together like the Banking77 import."""
    data = _write(tmp_path, "t.csv", "text,category\nmy card is late,card_arrival\nfx?,exchange_rate\n")
    team_map = _write(tmp_path, "map.json", json.dumps({"card_arrival": "Cards", "exchange_rate": "FX"}))
    call_command(
        "import_tickets",
        str(data),
        "--label-column",
        "category",
        "--team-map",
        str(team_map),
        "--create-teams",
    )
    assert sorted(Team.objects.values_list("slug", flat=True)) == ["cards", "fx"]


def test_command_rejects_bad_team_map_file(tmp_path):
    """A team map file that is not JSON is a clear CommandError."""
    data = _write(tmp_path, "t.csv", "text\nhello\n")
    team_map = _write(tmp_path, "map.json", "{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("import_tickets", str(data), "--team-map", str(team_map))


def test_command_imports_ten_thousand_rows(tmp_path):
    """A generated 10k-row CSV with 8 labels imports in one go into 8 new teams."""
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        for index in range(10_000):
            writer.writerow([f"customer message number {index} about thing {index % 97}", f"team{index % 8}"])
    call_command("import_tickets", str(path), "--label-column", "category", "--create-teams")
    assert Ticket.objects.count() == 10_000
    assert Team.objects.count() == 8
    assert Ticket.objects.filter(team__isnull=True).count() == 0


def test_export_command_writes_formula_safe_csv(tmp_path, teams):
    """export_tickets writes every column and quotes cells that a spreadsheet would execute."""
    for text in ['=HYPERLINK("http://evil")', "plain text"]:
        Ticket.objects.create(text=text, text_hash=text_hash(text), team=teams[0])
    out = tmp_path / "out.csv"
    call_command("export_tickets", str(out))
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0] == [
        "id",
        "text",
        "team",
        "source",
        "external_id",
        "labelled_by",
        "labelled_at",
        "excluded",
        "split",
        "created_at",
        "no_intent",
    ]
    assert {row[1] for row in rows[1:]} == {'\'=HYPERLINK("http://evil")', "plain text"}
    assert all(row[2] == "billing" for row in rows[1:])


def test_export_then_import_keeps_not_a_request(tmp_path, teams, staff_user):
    """export_tickets then import_tickets --label-column team: teams and "not a request" survive."""
    for text, team, no_intent in [
        ("I was charged twice", teams[0], False),
        ("hello there, nice day", None, True),
        ("no label yet", None, False),
    ]:
        Ticket.objects.create(text=text, text_hash=text_hash(text), team=team, no_intent=no_intent)
    out = tmp_path / "out.csv"
    call_command("export_tickets", str(out))
    Ticket.objects.all().delete()

    call_command("import_tickets", str(out), "--label-column", "team", stdout=io.StringIO())

    rows = {t.text: (t.team.slug if t.team else None, t.no_intent) for t in Ticket.objects.all()}
    assert rows == {
        "I was charged twice": ("billing", False),
        "hello there, nice day": (None, True),
        "no label yet": (None, False),
    }


def test_not_a_request_column_values_and_its_report_line(tmp_path, teams, staff_user):
    """no_intent takes 1/0, true/false, yes/no or empty; marked rows are stamped with the importer."""
    path = _write(
        tmp_path,
        "t.csv",
        "text,no_intent\nthanks bye,1\nhi there,TRUE\nmy card is blocked,0\nwhere is my refund,\nok cool,yes\n",
    )
    report = tickets_import(stream_or_path=path, user=staff_user)
    assert report.ok, report.errors
    assert (report.not_a_request, report.unlabelled) == (3, 2)
    assert "  (not a request): 3" in report.summary_lines()
    marked = Ticket.objects.filter(no_intent=True)
    assert sorted(marked.values_list("text", flat=True)) == ["hi there", "ok cool", "thanks bye"]
    assert all(t.labelled_by == staff_user and t.labelled_at is not None for t in marked)


def test_jsonl_not_a_request_key(tmp_path):
    """JSONL rows take a boolean no_intent key; rows without it are not marked."""
    lines = [{"text": "cheers mate", "no_intent": True}, {"text": "refund my order"}]
    path = _write(tmp_path, "t.jsonl", "\n".join(json.dumps(line) for line in lines))
    assert tickets_import(stream_or_path=path).ok
    assert dict(Ticket.objects.values_list("text", "no_intent")) == {"cheers mate": True, "refund my order": False}


def test_bad_or_contradictory_not_a_request_rows_import_nothing(tmp_path, teams):
    """A no_intent value that is not yes/no, or a row with a team and no_intent, fails the file."""
    path = _write(tmp_path, "t.csv", "text,team,no_intent\nhello,,maybe\nrefund me,billing,1\nfine row,billing,0\n")
    report = tickets_import(stream_or_path=path, label_column="team")
    assert not report.ok
    assert [issue.line for issue in report.errors] == [2, 3]
    assert "'no_intent' must be 1 or 0" in report.errors[0].message
    assert "not a request" in report.errors[1].message
    assert Ticket.objects.count() == 0
