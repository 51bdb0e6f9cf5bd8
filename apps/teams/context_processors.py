from .selectors import current_team, team_list


def current_team_context(request):
    if not request.user.is_authenticated:
        return {}
    teams = list(team_list(user=request.user))
    return {"my_teams": teams, "current_team": current_team(request=request, teams=teams)}
