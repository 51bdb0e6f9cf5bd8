from .selectors import current_team, team_list


def current_team_context(request):
    # No `user` where the auth middleware never ran: an error page answered before it (a static file's 404 in
    # the test server, a middleware's refusal) is rendered for nobody rather than failing again with a 500.
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    teams = list(team_list(user=user))
    return {"my_teams": teams, "current_team": current_team(request=request, teams=teams)}
