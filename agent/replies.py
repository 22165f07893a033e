"""Every sentence the bot says, in one place, short enough for one or two SMS segments."""

from __future__ import annotations

import datetime as dt

from agent.timeparse import format_date, format_time
from textdesk.business import Business

__all__ = ["R", "when_text"]


def when_text(date: str, time: str) -> str:
    return f"{format_date(dt.date.fromisoformat(date))} at {format_time(dt.time.fromisoformat(time))}"


def numbered(times: list[str]) -> str:
    return " ".join(f"{i}) {format_time(dt.time.fromisoformat(t))}" for i, t in enumerate(times, 1))


class R:
    """Reply templates. Methods, so each one's inputs are explicit."""

    @staticmethod
    def opt_out(b: Business) -> str:
        return f"You're unsubscribed from {b.name} and won't get more texts. Reply START to resubscribe."

    @staticmethod
    def opt_in(b: Business) -> str:
        return f"You're resubscribed to {b.name} texts. Reply HELP for help, STOP to unsubscribe."

    @staticmethod
    def help(b: Business) -> str:
        return (
            f"{b.name}: book, change or cancel appointments by text. {b.support}. "
            f"{b.frequency}. Msg & data rates may apply. Reply STOP to unsubscribe, HELP for help."
        )

    @staticmethod
    def opt_in_wording(b: Business) -> str:
        """The words shown where a customer agrees to texts (the web chat form), recorded as said."""
        return b.opt_in_text or (
            f"I agree to get text messages about my appointments from {b.name} at this number. "
            f"{b.frequency}. Msg & data rates may apply. Reply STOP to opt out, HELP for help."
        )

    @staticmethod
    def human() -> str:
        return "Got it, a team member will text you back here shortly."

    @staticmethod
    def escalated() -> str:
        return "Thanks, I've passed this to our team. A person will text you back here shortly."

    @staticmethod
    def rate_limited() -> str:
        return "You're sending messages faster than we can reply. Please wait a moment."

    @staticmethod
    def blocked(b: Business) -> str:
        return f"Sorry, I can't help with that. I can book, change or cancel appointments at {b.name}."

    @staticmethod
    def out_of_scope(b: Business) -> str:
        return f"Sorry, I can only help with appointments and questions about {b.name}."

    @staticmethod
    def greeting(b: Business) -> str:
        return (
            f"Hi! This is {b.name}. I can book, change or cancel appointments or answer "
            "questions. What can I do for you?"
        )

    @staticmethod
    def thanks() -> str:
        return "You're welcome! Text anytime if you need anything else."

    @staticmethod
    def clarify() -> str:
        return (
            "Sorry, I didn't get that. Do you want to book, change or cancel an appointment, "
            "or ask a question?"
        )

    @staticmethod
    def holding(b: Business, opens: str | None) -> str:
        """To a customer a person is handling, when the team is away (after hours)."""
        back = f" and will text you back when we open, {opens}" if opens else " and will text you back soon"
        return f"Thanks for waiting. The {b.name} team is away right now{back}."

    @staticmethod
    def outage() -> str:
        return "Sorry, I'm having trouble right now. A team member will text you back shortly."

    @staticmethod
    def ask_service(b: Business) -> str:
        names = [s.name for s in b.services]
        listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]
        return f"Sure! Which service would you like: {listed}?"

    @staticmethod
    def ask_date(service: str) -> str:
        return f"What day works for your {service}?"

    @staticmethod
    def offer_times(service: str, date: str, times: list[str], provider: str | None, lead: str = "") -> str:
        who = f" with {provider}" if provider else ""
        d = format_date(dt.date.fromisoformat(date))
        return f"{lead}Open times for a {service}{who} on {d}: {numbered(times)}. Reply with a number."

    @staticmethod
    def offer_days(service: str, slots: list[tuple[str, str]], provider: str | None, lead: str = "") -> str:
        """Offers across several days: "1) Tue Jun 16 5:00 PM 2) Wed Jun 17 5:30 PM"."""
        who = f" with {provider}" if provider else ""
        listed = " ".join(
            f"{i}) {format_date(dt.date.fromisoformat(d))} {format_time(dt.time.fromisoformat(t))}"
            for i, (d, t) in enumerate(slots, 1))
        return f"{lead}Open times for a {service}{who}: {listed}. Reply with a number."

    @staticmethod
    def which_offer(n: int) -> str:
        nums = [str(i) for i in range(1, n + 1)]
        return f"Which time works best? Reply {', '.join(nums[:-1])} or {nums[-1]}."

    @staticmethod
    def window_missed() -> str:
        return "Nothing's open in that window, but these are close. "

    @staticmethod
    def no_times(service: str, date: str, reason: str, lead: str = "") -> str:
        return f"{R.day_full(date, reason, lead)}What other day works for your {service}?"

    @staticmethod
    def day_full(date: str, reason: str, lead: str = "") -> str:
        """Why a day has no offer; after ``lead`` ("3:00 PM was just taken. ") it says "else"."""
        d = format_date(dt.date.fromisoformat(date))
        if reason == "closed":
            return f"{lead}We're closed on {d}. " if lead else f"Sorry, we're closed on {d}. "
        return f"{lead}Nothing else is open on {d}. " if lead else f"Sorry, there's nothing open on {d}. "

    @staticmethod
    def confirm_booking(service: str, date: str, time: str, provider: str | None,
                        contact: dict[str, str] | None = None) -> str:
        who = f" with {provider}" if provider else ""
        details = ", ".join(v for k, v in (contact or {}).items() if k in ("name", "email") and v)
        for_whom = f" for {details}" if details else ""
        return (f"{service.capitalize()}{who} on {when_text(date, time)}{for_whom}. "
                "Reply YES to confirm or tell me what to change.")

    @staticmethod
    def booked(service: str, date: str, time: str, provider: str | None) -> str:
        who = f" with {provider}" if provider else ""
        return f"You're booked: {service}{who} on {when_text(date, time)}. See you then!"

    @staticmethod
    def booked_instead(service: str, date: str, time: str, provider: str, was: str) -> str:
        return (f"{was} was just booked at that time, so you're with {provider}: {service} on "
                f"{when_text(date, time)}. See you then!")

    @staticmethod
    def booked_with_deposit(service: str, date: str, time: str, deposit: str, url: str) -> str:
        return f"You're booked: {service} on {when_text(date, time)}. A {deposit} deposit holds it: {url}"

    @staticmethod
    def reminder(b: Business, service: str, provider: str | None, date: str, time: str) -> str:
        who = f" with {provider}" if provider else ""
        return (f"Reminder from {b.name}: your {service}{who} is {when_text(date, time)}. "
                "Reply 1 to confirm, 2 to reschedule, 3 to cancel.")

    @staticmethod
    def no_show(service: str) -> str:
        return f"We missed you at your {service} today. Want to rebook? Just text us a day and time."

    @staticmethod
    def hold_released(service: str) -> str:
        return f"Your {service} hold was released because the deposit wasn't paid. Text us to rebook."

    @staticmethod
    def what_to_change() -> str:
        return "No problem. What would you like to change?"

    @staticmethod
    def dropped() -> str:
        return "OK, I've dropped that. Anything else I can help with?"

    @staticmethod
    def no_bookings() -> str:
        return "I don't see any upcoming appointments for this number. Want to book one?"

    @staticmethod
    def pick_booking(action: str, lines: list[str]) -> str:
        return (
            f"Which appointment do you want to {action}? "
            + " ".join(f"{i}) {line}" for i, line in enumerate(lines, 1))
            + ". Reply with a number."
        )

    @staticmethod
    def ask_new_date(what: str) -> str:
        return f"Sure. What day would you like to move your {what} to?"

    @staticmethod
    def confirm_reschedule(what: str, old: str, date: str, time: str) -> str:
        return f"Move your {what} from {old} to {when_text(date, time)}? Reply YES to confirm."

    @staticmethod
    def rescheduled(what: str, date: str, time: str) -> str:
        return f"Done: your {what} is now on {when_text(date, time)}."

    @staticmethod
    def confirm_cancel(line: str) -> str:
        return f"Cancel your {line}? Reply YES to confirm."

    @staticmethod
    def cancelled(line: str) -> str:
        return f"Your {line} is cancelled."

    @staticmethod
    def kept() -> str:
        return "OK, I'll keep it as is. Anything else?"

    @staticmethod
    def your_bookings(lines: list[str]) -> str:
        if len(lines) == 1:
            return f"You have a {lines[0]}."
        return "Your appointments: " + "; ".join(lines) + "."

    @staticmethod
    def confirm_contact(fields: dict[str, str]) -> str:
        parts = [f"{k} to {v}" for k, v in fields.items()]
        return f"Update your {' and '.join(parts)}? Reply YES to confirm."

    @staticmethod
    def ask_contact() -> str:
        return "Sure, what name or email should I put on file?"

    @staticmethod
    def contact_updated() -> str:
        return "Thanks, your details are updated."

    @staticmethod
    def clash_lead(time: str) -> str:
        return f"Sorry, {format_time(dt.time.fromisoformat(time))} was just taken. "

    @staticmethod
    def clash_offer(time: str, options: list[tuple[str, str | None]]) -> str:
        """After a clash: "Sorry, 3:00 PM was just taken. I can do 1) 3:30 PM with Maya 2) ...". """
        listed = " ".join(
            f"{i}) {format_time(dt.time.fromisoformat(t))}" + (f" with {p}" if p else "")
            for i, (t, p) in enumerate(options, 1)
        )
        nums = [str(i) for i in range(1, len(options) + 1)]
        pick = nums[0] if len(nums) == 1 else ", ".join(nums[:-1]) + f" or {nums[-1]}"
        return f"{R.clash_lead(time)}I can do {listed}. Reply {pick}."

    @staticmethod
    def taken_lead() -> str:
        return "Sorry, that time isn't available. "

    @staticmethod
    def unknown_question(b: Business) -> str:
        return f"I'm not sure about that one. Reply HUMAN and someone from {b.name} will text you back."
