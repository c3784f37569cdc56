"""The transcript and search endpoints: one APIView per operation, thin (validate, call a service or a
selector, render)."""

from __future__ import annotations

import base64
import binascii
import json

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param
from rest_framework.views import APIView

from scriptripper.errors import validation_error
from scriptripper.pagination import ApiCursorPagination
from scriptripper.parsers import SUBMISSION_PARSERS
from scriptripper.schema import error_responses
from transcripts.models import Transcript
from transcripts.selectors import SearchPosition, transcript_for_user, transcripts_list, turns_search
from transcripts.serializers import (
    SearchFilterSerializer, SearchResultsSerializer, TranscriptCreateSerializer, TranscriptFieldsSerializer,
    TranscriptListFilterSerializer, TranscriptListSerializer, TranscriptSerializer,
)
from transcripts.services import transcript_create, transcript_delete, transcript_update

CREATE_EXAMPLE = OpenApiExample("text", request_only=True, value={
    "transcript": "Alice: We ship the beta on Friday.\nBob: Agreed; I will tell the customers.",
    "title": "Beta planning", "occurred_at": "2026-11-03T14:00:00Z", "tags": ["launch"],
    "transcript_language": "en"})


class TranscriptCursorPagination(ApiCursorPagination):
    ordering = ("-occurred_at", "-id")
    page_size_setting, max_page_size_setting = "TRANSCRIPTS_PAGE_SIZE", "TRANSCRIPTS_MAX_PAGE_SIZE"


def owned_transcript(request: Request, transcript_id: str) -> Transcript:
    # Someone else's transcript is "not found", never "forbidden".
    transcript = transcript_for_user(user=request.user, transcript_id=transcript_id)
    if transcript is None:
        raise NotFound("No such transcript.")
    return transcript


class TranscriptListCreateApi(APIView):
    parser_classes = SUBMISSION_PARSERS

    @extend_schema(
        parameters=[TranscriptListFilterSerializer, *TranscriptCursorPagination.parameters("transcripts")],
        responses={200: TranscriptListSerializer, **error_responses(400, 401)},
        summary="Your transcripts, latest meeting first (cursor-paginated, without their text)",
        operation_id="v1_transcripts_list",
    )
    def get(self, request: Request) -> Response:
        filters = TranscriptListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        return TranscriptCursorPagination().page_response(
            transcripts_list(user=request.user, filters=filters.validated_data), request, self, TranscriptListSerializer)

    @extend_schema(
        request={"application/json": TranscriptCreateSerializer, "multipart/form-data": TranscriptCreateSerializer},
        examples=[CREATE_EXAMPLE],
        responses={201: TranscriptSerializer,
                   200: OpenApiResponse(TranscriptSerializer, description="you stored the same text before: that "
                                                                         "transcript, unchanged"),
                   **error_responses(400, 401, 413, 415)},
        summary="Store a transcript (text, SRT, WebVTT, segments or an upload), parsed into searchable turns",
    )
    def post(self, request: Request) -> Response:
        serializer = TranscriptCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        transcript, created = transcript_create(owner=request.user, **serializer.validated_data)
        return Response(TranscriptSerializer(transcript).data,
                        status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class TranscriptDetailApi(APIView):
    @extend_schema(responses={200: TranscriptSerializer, **error_responses(401, 404)}, summary="A transcript")
    def get(self, request: Request, transcript_id: str) -> Response:
        return Response(TranscriptSerializer(owned_transcript(request, transcript_id)).data)

    @extend_schema(request=TranscriptFieldsSerializer, responses={200: TranscriptSerializer,
                                                                  **error_responses(400, 401, 404)},
                   summary="Change a transcript's title, date, tags or language (its text stays as stored)")
    def patch(self, request: Request, transcript_id: str) -> Response:
        transcript = owned_transcript(request, transcript_id)
        serializer = TranscriptFieldsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(TranscriptSerializer(transcript_update(transcript=transcript,
                                                               **serializer.validated_data)).data)

    @extend_schema(responses={204: None, **error_responses(401, 404, 409)},
                   summary="Delete a transcript with its turns and search entries; its jobs keep their results "
                           "without the text (409 while one of them is queued or running)")
    def delete(self, request: Request, transcript_id: str) -> Response:
        transcript_delete(transcript=owned_transcript(request, transcript_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SearchApi(APIView):
    @extend_schema(parameters=[SearchFilterSerializer], responses={200: SearchResultsSerializer,
                                                                   **error_responses(400, 401)},
                   summary="Full-text search over your transcripts' turns, best match first")
    def get(self, request: Request) -> Response:
        filters = SearchFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = dict(filters.validated_data)
        after = decode_position(params.pop("cursor", None))
        limit = params.pop("limit", None) or settings.TRANSCRIPTS_PAGE_SIZE
        hits = turns_search(user=request.user, after=after, limit=limit + 1, **params)
        next_url = None
        if len(hits) > limit:
            hits = hits[:limit]
            last = hits[-1]
            next_url = replace_query_param(request.build_absolute_uri(), "cursor",
                                           encode_position(SearchPosition(rank=last["rank"], turn_id=last["id"])))
        return Response({"results": [search_hit(hit) for hit in hits], "next": next_url})


def search_hit(hit: dict) -> dict:
    """A hit as SearchHitSerializer documents it, built directly: every search renders a page of them, and a
    serializer deep-copies its fields for each page first (the test of the search endpoint holds the two alike)."""
    return {"transcript": str(hit["transcript_id"]), "title": hit["title"], "turn": hit["number"],
            "speaker": hit["speaker"] or None, "start": hit["start"], "snippet": hit["snippet"]}


def encode_position(position: SearchPosition) -> str:
    raw = json.dumps([position.rank, position.turn_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_position(cursor: str | None) -> SearchPosition | None:
    if not cursor:
        return None
    try:
        rank, turn_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(rank, bool) or not isinstance(rank, (int, float)) or type(turn_id) is not int:
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise validation_error("cursor", "Invalid cursor: pass back the `next` link as given.") from None
    return SearchPosition(rank=float(rank), turn_id=turn_id)
