"""Account endpoints: the caller's own API tokens (and the account itself)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import ApiToken, User
from accounts.selectors import account_document
from accounts.serializers import CreatedTokenSerializer, TokenCreateSerializer, TokenSerializer
from accounts.services import api_token_create, api_token_revoke, user_rotate_webhook_secret
from scriptripper.schema import error_responses

TOKEN_ID = OpenApiParameter("token_id", int, OpenApiParameter.PATH, description="The token's id (from the list).")


class TokenListApi(APIView):
    @extend_schema(responses={200: TokenSerializer(many=True), **error_responses(401, 429)},
                   summary="Your API tokens (prefixes, names, dates; never the secrets)")
    def get(self, request: Request) -> Response:
        tokens = ApiToken.objects.filter(user=request.user).order_by("-created_at", "-id")
        return Response(TokenSerializer(tokens, many=True).data)

    @extend_schema(request=TokenCreateSerializer,
                   responses={201: CreatedTokenSerializer, **error_responses(400, 401, 413, 415, 429)},
                   summary="Create an API token; its secret is in this response only")
    def post(self, request: Request) -> Response:
        serializer = TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = api_token_create(user=request.user, **serializer.validated_data)
        data = TokenSerializer(created.token).data
        data["token"] = created.secret
        return Response(data, status=status.HTTP_201_CREATED)


class TokenRevokeApi(APIView):
    @extend_schema(parameters=[TOKEN_ID], responses={204: None, **error_responses(401, 404, 429)},
                   summary="Revoke one of your API tokens (at once; it cannot be undone)")
    def delete(self, request: Request, token_id: str) -> Response:
        # Someone else's token is "not found", never "forbidden": ids must not confirm what exists.
        token = ApiToken.objects.filter(user=request.user, pk=int(token_id)).first()
        if token is None:
            raise NotFound("No such token.")
        api_token_revoke(token=token)
        return Response(status=status.HTTP_204_NO_CONTENT)


ACCOUNT_SCHEMA = inline_serializer("Account", fields={
    "username": serializers.CharField(),
    "plan": serializers.ChoiceField(choices=User.Plan.values),
    "webhook_secret": serializers.CharField(
        help_text="Signing secret of your job callbacks (Standard Webhooks, whsec_...): verify the "
                  "webhook-signature header with it."),
    "unlimited": serializers.BooleanField(help_text="exempt from the throttles and the monthly spending limit"),
    "spending": inline_serializer("AccountSpending", fields={
        "currency": serializers.CharField(),
        "spent_this_month": serializers.DecimalField(max_digits=20, decimal_places=8, coerce_to_string=False,
                                                     help_text="USD: the real cost of this month's provider calls"),
        "monthly_budget": serializers.DecimalField(max_digits=20, decimal_places=6, coerce_to_string=False,
                                                   allow_null=True, help_text="USD; null: no limit"),
        "remaining": serializers.DecimalField(max_digits=20, decimal_places=8, coerce_to_string=False,
                                              allow_null=True, help_text="USD left this month; null: no limit"),
        "period_start": serializers.DateTimeField(),
        "resets_at": serializers.DateTimeField(),
    }),
    "rate_limits": inline_serializer("AccountRateLimits", fields={
        "submit": serializers.CharField(allow_null=True, help_text='job submissions, e.g. "20/min"; null: none'),
        "api": serializers.CharField(allow_null=True, help_text="all API requests; null: none"),
    }),
})


class AccountApi(APIView):
    @extend_schema(responses={200: ACCOUNT_SCHEMA, **error_responses(401, 429)},
                   summary="Your account: username, plan and webhook signing secret")
    def get(self, request: Request) -> Response:
        return Response(account_document(request.user))


class AccountWebhookSecretApi(APIView):
    @extend_schema(request=None, responses={200: ACCOUNT_SCHEMA, **error_responses(401, 429)},
                   summary="Rotate your webhook signing secret (callbacks are signed with the new one from now on)")
    def post(self, request: Request) -> Response:
        user_rotate_webhook_secret(user=request.user)
        return Response(account_document(request.user))
