"""{% load gates %}: `{{ value|gate_value }}` shows a gate's value or threshold the way its message does."""
from django import template

from apps.registry.gates import format_value

register = template.Library()
register.filter("gate_value", format_value)
