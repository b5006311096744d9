"""Pages of the live chat: the demo page hosting the widget, and the agent console."""

from django.contrib.auth import views as auth_views
from django.urls import path

from chatbot import views

urlpatterns = [
    path("", views.demo_page, name="chat-demo"),
    path("agent/", views.agent_console, name="agent-console"),
    # The admin's login form only admits staff; agents who are team members log in here.
    path(
        "agent/login/",
        auth_views.LoginView.as_view(template_name="chatbot/login.html", next_page="agent-console"),
        name="agent-login",
    ),
]
