"""Random English prompts for the synthetic corpus, biased towards our keywords in many contexts."""

from __future__ import annotations

import numpy as np

KEYWORDS: tuple[str, ...] = ("hey", "stop", "computer", "lights", "okay", "hello")
DIGITS: tuple[str, ...] = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TEENS = ("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")

NAMES = (
    "alice bob charlie david emma frank grace henry isabel jack kate liam maria noah olivia peter quentin "
    "rachel sam tina uma victor wendy xavier yusuf zoe james sophie oliver mia lucas chloe jordan taylor "
    "anna ben carlos diana ethan fatima george hannah ivan julia kevin laura mohammed nina oscar priya"
).split()
ROOMS = "kitchen bedroom bathroom living room office garage hallway garden basement dining room".split(" ")
DEVICES = "lights lamp fan heater radio music television tv alarm timer oven kettle speaker door blinds".split()
VERBS_CMD = "turn on|turn off|switch on|switch off|dim|brighten|open|close|start|stop|pause|play|mute".split("|")
COMMON = (
    "the a an and or but if then so because of to in on at by for with from up down out over under about "
    "i you he she it we they me him her us them my your his its our their this that these those what which "
    "who when where why how all any both each few more most other some such no not only own same than too "
    "very can will just should now is are was were be been have has had do does did say said get got make "
    "made go went know knew take took see saw come came think look want give use find tell ask work seem feel "
    "try leave call keep let begin help talk turn start show hear play run move like live believe hold bring "
    "happen write provide sit stand lose pay meet include continue set learn change lead understand watch "
    "follow stop create speak read allow add spend grow open walk win offer remember love consider appear buy "
    "wait serve die send expect build stay fall cut reach kill remain suggest raise pass sell require report "
    "decide pull time year people way day man thing woman life child world school state family student group "
    "country problem hand part place case week company system program question work government number night "
    "point home water room mother area money story fact month lot right study book eye job word business issue "
    "side kind head house service friend father power hour game line end member law car city community name "
    "president team minute idea kid body information back parent face others level office door health person "
    "art war history party result change morning reason research girl guy moment air teacher force education "
    "good new first last long great little old big high different small large next early young important public "
    "bad able late hard major better best quick quiet quickly zone zoo jazz jump jacket joke juice box fox "
    "six fix mix next text exit example extra quite queen quarter question quiz size prize lazy crazy puzzle "
    "brown dog cat bird fish tree river mountain sun moon star rain snow wind cloud sky sea blue red green "
    "yellow black white orange purple coffee tea bread milk cheese apple banana pizza dinner lunch breakfast "
    "music song movie news weather phone message email computer screen window table chair kitchen light "
    "really always never often sometimes maybe please thanks thank yes yeah sure fine well here there again "
    "i'm don't it's can't won't that's you're we're isn't didn't i'll let's what's there's"
).split()
WAKE_PHRASES = (
    "hey computer", "okay computer", "hello computer", "hey there", "hello", "stop", "lights", "okay",
    "computer", "hey", "stop stop", "okay stop", "hello there", "computer stop", "lights off", "lights on",
)
COMMAND_TEMPLATES = (
    "{verb} the {device}", "{verb} the {room} {device}", "please {verb} the {device}",
    "{wake} {verb} the {device}", "{wake} {verb} the {device} in the {room}",
    "turn on the lights", "turn off the lights", "stop the music", "stop the timer", "stop the alarm",
    "{wake} stop", "{wake} what time is it", "{wake} what's the weather like",
    "set a timer for {number} minutes", "set an alarm for {digit} {digit}", "{wake} set a timer for {number} seconds",
    "call {name}", "{wake} call {name}", "send a message to {name}", "play some music", "{wake} play {name}'s playlist",
    "volume {digit}", "set the volume to {digit}", "dim the lights to {number} percent",
    "{wake} turn the lights {onoff}", "lights {onoff} in the {room}", "okay {name} stop the music",
    "hello {name} how are you", "hey {name} can you hear me", "the computer is in the {room}",
    "stop talking", "stop it", "don't stop", "i said stop", "can you stop the {device}",
    "my number is {digits}", "the code is {digits}", "dial {digits}", "room {number}", "{digits}",
    "it costs {number} dollars", "there are {number} {noun}s", "{name} said hello", "say hello to {name}",
)
NOUNS = (
    "time year day thing world school family student group country problem hand place week question number "
    "night point home water room money story book eye job word house friend game line car city name team "
    "idea body door face box fox zoo jacket queen puzzle dog cat bird fish tree river mountain sun moon star "
    "song movie phone message window table chair coffee bread apple pizza"
).split()
ADJECTIVES = (
    "good new first last long great little old big high different small large next early young important "
    "bad quick quiet lazy crazy brown blue red green yellow black white orange purple"
).split()
VERBS = (
    "make take see find tell ask give use try leave call keep help show hear play move like hold bring write "
    "read watch follow stop open buy build fix mix jump pass sell change start"
).split()
NEAR_MISS_WORDS = (
    "they hay hate stops stopped stopping stopper nonstop top shop step computers compute computed computing "
    "light lighter lighting lighted lightly flights nights highlights hollow yellow fellow zeros hero someone "
    "anyone everyone done won none alone ones too tool tree free fourth floor fifth hive drive sixth sick "
    "seventh heaven eighth ate weight ninth nice mine thirteen fourteen fifteen sixteen seventeen eighteen "
    "nineteen sixty seventy eighty ninety"
).split()
"""Words that contain or sound like a keyword but are not it: the false alarms a spotter must learn to
refuse. The eval streams' near-misses "heavy", "commuter", "often" and "tone" are deliberately left out,
so that eval shows whether refusing these carries over to near-misses never trained on. The teens and
tens joined after version 6 was trained (version 7 is the first to learn from them): spelled numbers
alone held too few of them (about 30 clips each in 20 h)."""
NEAR_MISS_TEMPLATES = (
    "the music stopped", "{name} stopped the {noun}", "it keeps stopping", "we are stopping in the {room}",
    "is anyone there", "someone is in the {room}", "everyone likes the {noun}", "the computers are in the {room}",
    "the lighter is on the table", "turn the light {onoff}", "the {room} light is {adj}", "they said hello",
    "they have {number} {noun}s", "the {noun} stops at {digit}", "{name} is computing the {noun}",
    "the {adj} fellow bought {number} flights", "it was {number} and the {noun} stopped",
)
SENTENCE_TEMPLATES = (
    "the {adj} {noun} is in the {room}", "{name} will {verb} the {noun} tomorrow",
    "i think the {noun} is {adj}", "do you want to {verb} the {noun}", "we should {verb} the {adj} {noun}",
)


def number_words(n: int) -> str:
    """Spell a number 0..9999 in English words, e.g. 342 -> 'three hundred forty two'."""
    if n < 10:
        return DIGITS[n]
    if n < 20:
        return _TEENS[n - 10]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + DIGITS[n % 10])
    if n < 1000:
        rest = n % 100
        return DIGITS[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    rest = n % 1000
    return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))


class PromptGenerator:
    """Draws prompts from a mix of commands, wake phrases, digit strings, numbers and word salads.

    Word salads give every letter (including Q, X, J, Z) context-free exposure; the templates put the
    keywords inside realistic commands so the model does not just learn them in isolation.
    """

    def __init__(self, rng: np.random.Generator, near_miss_share: float = 0.0) -> None:
        self.rng = rng
        self.near_miss_share = near_miss_share

    def _pick(self, items: tuple[str, ...] | list[str]) -> str:
        return items[int(self.rng.integers(len(items)))]

    def _number(self) -> str:
        scale = self._pick((10, 100, 1000, 10000))
        return number_words(int(self.rng.integers(scale)))

    def _digits(self) -> str:
        return " ".join(self._pick(DIGITS) for _ in range(int(self.rng.integers(2, 8))))

    def _fill(self, template: str) -> str:
        fields = {
            "verb": self._pick(VERBS_CMD) if "{device}" in template else self._pick(VERBS),
            "device": self._pick(DEVICES),
            "room": self._pick(ROOMS),
            "wake": self._pick(("hey computer", "okay computer", "hello computer", "computer", "hey", "okay")),
            "number": self._number(),
            "digit": self._pick(DIGITS),
            "digits": self._digits(),
            "name": self._pick(NAMES),
            "onoff": self._pick(("on", "off")),
            "noun": self._pick(NOUNS),
            "adj": self._pick(ADJECTIVES),
        }
        return template.format(**fields)

    def _salad(self) -> str:
        words = [self._pick(COMMON) for _ in range(int(self.rng.integers(2, 9)))]
        if self.rng.random() < 0.3:
            words.insert(int(self.rng.integers(len(words) + 1)), self._pick(KEYWORDS + DIGITS))
        return " ".join(words)

    def _near_miss(self) -> str:
        if self.rng.random() < 0.5:
            return self._fill(self._pick(NEAR_MISS_TEMPLATES))
        words = [self._pick(COMMON) for _ in range(int(self.rng.integers(1, 7)))]
        for _ in range(int(self.rng.integers(1, 3))):
            words.insert(int(self.rng.integers(len(words) + 1)), self._pick(NEAR_MISS_WORDS))
        return " ".join(words)

    def __call__(self) -> str:
        # No draw at all when near-misses are off, so the eval split and the eval streams stay as they were.
        if self.near_miss_share and self.rng.random() < self.near_miss_share:
            return self._near_miss()
        kind = self.rng.random()
        if kind < 0.35:
            return self._fill(self._pick(COMMAND_TEMPLATES))
        if kind < 0.45:
            return self._pick(WAKE_PHRASES)
        if kind < 0.55:
            return self._digits() if self.rng.random() < 0.6 else self._pick(DIGITS)
        if kind < 0.60:
            return self._number()
        if kind < 0.70:
            return self._fill(self._pick(SENTENCE_TEMPLATES))
        return self._salad()
