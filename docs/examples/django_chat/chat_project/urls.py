from django.urls import path

from chat_project import views

urlpatterns = [path("", views.index), path("chat", views.chat)]
