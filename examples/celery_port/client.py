"""What the web app does: send jobs, then read their results. Unchanged from the Celery
project, except for the marked lines."""

from proj.billing.tasks import charge, close_month, log_event
from proj.celery import app
from proj.emails.tasks import send_receipt

from sqlqueue import DuplicateJobIdError, states  # was: from celery import states


def main():
    order = charge.apply_async((42, 1250), task_id="order-42-charge")
    try:  # sqlqueue only: a job id is unique, so the order cannot be charged twice
        charge.apply_async((42, 1250), task_id="order-42-charge")
    except DuplicateJobIdError:
        print("second charge of order 42 refused")
    nothing = charge.delay(43, 0)
    receipt = send_receipt.delay("ann@example.com", 42)
    month = close_month.delay([42, 43, 44])
    log_event.delay("month closed")
    print("charged inline:", charge.apply((44, 100)).get())

    print("charge:", order.get(timeout=30), "after", order.retries, "retry")
    print("receipt:", receipt.get(timeout=30), "from queue", receipt.queue)
    print("month:", month.get(timeout=30), month.state)
    nothing.get(timeout=30, propagate=False)
    print("order 43:", nothing.state, nothing.state == states.REJECTED)
    again = app.AsyncResult("order-42-charge")  # from its id alone, anywhere
    print("order 42:", again.state, again.info, again.date_done is not None)


if __name__ == "__main__":
    main()
