"""Every Slack identifier the app uses, in one place; a test checks manifest.yml against them."""

from __future__ import annotations

from enum import StrEnum


class Command(StrEnum):
    RELEASE = "/release"
    PHASE = "/phase"
    ISSUE = "/issue"
    PAGE = "/page"
    GONOGO = "/gonogo"


class ActionId(StrEnum):
    ISSUE_INVESTIGATE = "issue_investigate"
    ISSUE_ESCALATE = "issue_escalate"
    ISSUE_RESOLVE = "issue_resolve"
    PAGE_ACK = "page_ack"
    VOTE_GO = "vote_go"
    VOTE_NO_GO = "vote_no_go"
    VOTE_DECIDE = "vote_decide"
    ROLLBACK_CONTINUE = "rollback_continue"
    ROLLBACK_EXECUTE = "rollback_execute"
    EVALUATION_CONTINUE = "rollback_evaluation_continue"
    EVALUATION_EXECUTE = "rollback_evaluation_execute"
    TASK_TOGGLE = "task_toggle"
    """value `RELEASE:SCOPE:N`: tick task N of a phase (SCOPE = phase id) or of the go/no-go checklist, or untick it.
    `RELEASE:SCOPE:N:tick` / `:untick` says which (what the button showed): a stale second click is refused."""
    PHASE_DONE_CONFIRM = "phase_done_confirm"
    """value `RELEASE:PHASE`: finish a phase although tasks are still open (after being asked)."""
    SIGNOFF_SIGN = "signoff_sign"
    """value `RELEASE:ROLE`."""
    SIGNOFF_REFUSE = "signoff_refuse"
    """value `RELEASE:ROLE`; opens a modal for the reason."""
    HANDOFF_ACCEPT = "handoff_accept"
    """value `RELEASE`."""
    CHECK_CONTINUE = "rollback_check_continue"
    CHECK_EXECUTE = "rollback_check_execute"


class CallbackId(StrEnum):
    ISSUE_MODAL = "issue_modal"
    RESOLVE_MODAL = "issue_resolve_modal"
    NO_GO_MODAL = "vote_no_go_modal"
    DECIDE_MODAL = "vote_decide_modal"
    SIGNOFF_REFUSE_MODAL = "signoff_refuse_modal"


class BlockId(StrEnum):
    ISSUE_ACTIONS = "issue_actions"
    PAGE_ACTIONS = "page_actions"
    VOTE_ACTIONS = "vote_actions"
    ROLLBACK_ACTIONS = "rollback_actions"
    SEVERITY = "severity"
    COMPONENT = "component"
    REGION = "region"
    IMPACT = "impact"
    ERROR = "error"
    NOTE = "note"
    REASON = "reason"
    OUTCOME = "outcome"


class Event(StrEnum):
    APP_HOME_OPENED = "app_home_opened"


METADATA_EVENT_TYPE = "warroom_message"
