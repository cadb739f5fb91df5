"""NVIDIA HelpSteer3 preference: two responses to a conversation, ``overall_preference`` from -3 to 3."""

from __future__ import annotations

from realm_cli.contracts import Excluded
from realm_cli.data.guess import Signature
from realm_cli.data.rows import RowSource, bad, field, messages, pair, text
from realm_cli.hookspecs import hookimpl


class HelpSteer3(RowSource):
    """nvidia/HelpSteer3 (config ``preference``): negative ``overall_preference`` = response1 better, positive =
    response2 better; margin = |overall_preference|; 0 (about the same) is excluded and counted as "tie".
    ``context`` is the conversation up to the final user turn.
    """

    name = "helpsteer3"
    signature = Signature(keys=("context", "response1", "response2", "overall_preference"),
                          hub_ids=("nvidia/HelpSteer3",))
    hub_id = "nvidia/HelpSteer3"
    default_on_bad_record = "skip"

    def hub_kwargs(self) -> dict:
        return {"name": "preference"}

    def convert(self, row: dict, where):
        context = messages(field(row, "context", where), where, "context")
        if not context or context[-1]["role"] != "user":
            raise bad(where, "context", "expected a conversation ending in a user turn", "wrong type")
        preference = field(row, "overall_preference", where)
        if isinstance(preference, bool) or not isinstance(preference, int) or not -3 <= preference <= 3:
            raise bad(where, "overall_preference", f"expected an integer from -3 to 3, got {preference!r}",
                      "wrong type")
        if preference == 0:
            raise Excluded(where.file, where.line, "overall_preference", "responses rated about the same", "tie")
        first, second = text(row, "response1", where), text(row, "response2", where)
        chosen, rejected = (first, second) if preference < 0 else (second, first)
        fields = ("response1", "response2") if preference < 0 else ("response2", "response1")
        return pair(context, chosen, rejected, where, source=self.name, margin=float(abs(preference)),
                    fields=fields, meta={"domain": row.get("domain"), "language": row.get("language")})


@hookimpl
def register_datasets(register):
    register("helpsteer3", HelpSteer3)
