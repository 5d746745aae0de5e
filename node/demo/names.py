"""Who travels: per-origin name customs (a data table), and each origin's
share of lone men, of families and its passport number pattern."""

from __future__ import annotations

from dataclasses import dataclass


def _w(text: str) -> tuple[str, ...]:
    return tuple(text.split())


@dataclass(frozen=True)
class Names:
    family: tuple[str, ...]
    male: tuple[str, ...]
    female: tuple[str, ...]
    second_given: float = 0.0  # share of people with two given names
    two_surnames: bool = False  # Spanish custom: father's first + mother's first
    patronymic: bool = False  # a child's family name is the father's given name
    feminine_suffix: str = ""  # Uzbek: Karimov, Karimova
    spouse_shares_name: bool = False


_HAITIAN = Names(
    _w(
        "Jean-Baptiste Pierre Joseph Louis Charles Saint-Fleur Desrosiers Dorvil Jean-Louis "
        "Etienne Augustin Célestin Fils-Aimé Philogène Toussaint Valcourt Michel Dieudonné "
        "Exantus Lafortune Similien Beauvais Derisier"
    ),
    _w(
        "Jean Wilson Jameson Frantz Wesly Kervens Stevenson Ricardo Woodley Peterson Jocelyn "
        "Makenson Dieunel Wilner Fritznel Jimmy Emmanuel"
    ),
    _w(
        "Marie Nadège Roseline Guerline Wideline Fabienne Judith Mirlande Lovely Sherline "
        "Esther Micheline Nathalie Djenane"
    ),
    second_given=0.35,
    spouse_shares_name=True,
)
_CUBAN = Names(
    _w(
        "González Rodríguez Pérez Hernández García Fernández López Martínez Díaz Sánchez "
        "Ramírez Castillo Morales Rivero Cabrera Valdés Leyva Guerra Fonseca Suárez Betancourt"
    ),
    _w(
        "Yoandri Yunior Dayron Alexei Yasmani Osniel Reinier Yordanis Ernesto Lázaro Raúl "
        "Yuniel Maikel Alain Yosvany Adrián"
    ),
    _w(
        "Yaimara Yusleidy Dayana Lisandra Yanelis Mailén Yudith Arianna Liset Marisleidys "
        "Yamilé Daimí Yenisey Odalys"
    ),
    second_given=0.5,
    two_surnames=True,
)
_INDIAN = Names(
    _w(
        "Patel Singh Kumar Sharma Chaudhary Yadav Gill Sandhu Dhillon Prajapati Thakor Desai "
        "Grewal Parmar"
    ),
    _w("Harpreet Gurpreet Jaswinder Rahul Vikram Rohit Manish Jagdeep Hardik Mehul Sandeep Ankit"),
    _w("Priya Pooja Harleen Simran Kiran Komal Anjali Manpreet Jaspreet Hetal Nisha"),
    spouse_shares_name=True,
)
_NEPALI = Names(
    _w("Shrestha Gurung Tamang Magar Thapa Adhikari Karki Sherpa Bhandari Poudel Khadka"),
    _w("Bikash Suman Ramesh Santosh Dipak Prakash Bishal Sagar Roshan Nabin"),
    _w("Sunita Pramila Sarita Sabina Manisha Asmita Gita"),
    spouse_shares_name=True,
)
_BANGLADESHI = Names(
    _w("Hossain Rahman Islam Ahmed Uddin Miah Chowdhury Sarkar Talukder Bhuiyan Mollah"),
    _w("Mohammad Abdul Rafiqul Shafiqul Jahid Sohel Rakib Tanvir Mizanur Shahidul"),
    _w("Nusrat Farzana Sumaiya Tahmina Rokeya Shirin Taslima Nasrin"),
)
_CHINESE = Names(
    _w("Wang Zhang Chen Yang Huang Zhao Zhou Liang Zheng Deng Xiao Feng Tang Song Jiang Cheng"),
    _w("Zhiwei Haoran Jianguo Junjie Zihao Yuxuan Mingjie Jianhua Wenbo Tianyu Guoqiang"),
    _w("Xiaoyan Meiling Yuting Jingjing Xinyi Lingling Huimin Shuang Yanping Xiaoli"),
)
_AFGHAN = Names(
    _w(
        "Ahmadzai Popal Rahimi Hakimi Sultani Noori Karimi Stanikzai Amiri Hussaini "
        "Mohammadi Sadat Wardak"
    ),
    _w("Ahmad Mohammad Farid Habib Jawad Naveed Samiullah Zabihullah Rahmatullah Hamid Mirwais"),
    _w("Fatima Zahra Maryam Zainab Farzana Nargis Shabnam Hosai Mursal Freshta"),
    spouse_shares_name=True,
)
_UZBEK = Names(
    _w(
        "Karimov Rakhimov Usmonov Tursunov Yusupov Abdullayev Ismoilov Nazarov Saidov "
        "Ergashev Sobirov Qodirov"
    ),
    _w("Jasur Bekzod Sardor Otabek Shokhrukh Ulugbek Dilshod Jahongir Sanjar"),
    _w("Dilnoza Gulnora Madina Nilufar Shakhnoza Zarina Malika Kamola"),
    feminine_suffix="a",
    spouse_shares_name=True,
)
_SAHEL = Names(  # Senegal and Guinea: Wolof and Fula names
    _w("Diop Ndiaye Gueye Faye Mbaye Diallo Barry Camara Sylla Condé Touré Keita Soumah Baldé"),
    _w("Mamadou Moussa Cheikh Ousmane Abdoulaye Ibrahima Modou Alpha Oumar Thierno Sékou Amadou"),
    _w("Fatou Aminata Khady Mariama Ndeye Kadiatou Fatoumata Aïssatou Djenab Astou Binta"),
    second_given=0.2,
)
_CAMEROONIAN = Names(
    _w("Nkodo Mbarga Fotso Tchinda Nguema Kamga Ngono Atangana Essomba Njoya Fouda"),
    _w("Emmanuel Serge Hervé Blaise Arnaud Christian Franck Landry Boris Cyrille"),
    _w("Brigitte Carine Estelle Mireille Rosine Solange Vanessa Larissa Sandrine"),
    second_given=0.4,
    spouse_shares_name=True,
)
_CONGOLESE = Names(
    _w("Mbuyi Kalonji Tshibangu Ilunga Kasongo Mukendi Lukusa Kabeya Mulumba Nsimba"),
    _w("Patrick Jean-Claude Héritier Dieudonné Glody Christian Trésor Fiston Exaucé"),
    _w("Grâce Merveille Esther Nathalie Chantal Divine Gloire Ornella Bénédicte"),
    second_given=0.3,
)
_GHANAIAN = Names(
    _w("Mensah Owusu Boateng Asante Agyei Appiah Darko Acheampong Amoah Ofori Yeboah"),
    _w("Kwame Kwabena Kwaku Kwasi Emmanuel Isaac Samuel Ebenezer Prince"),
    _w("Akosua Abena Adwoa Gifty Comfort Priscilla Akua Mercy"),
    second_given=0.3,
    spouse_shares_name=True,
)
_ANGOLAN = Names(
    _w("Fernandes Domingos Lopes Baptista Sebastião Kiala Mateus Cassoma Cardoso Chipenda"),
    _w("João António Manuel Adilson Edson Nelson Armando Osvaldo Avelino"),
    _w("Maria Isabel Teresa Joana Esperança Luzia Madalena Celeste Filomena"),
    second_given=0.4,
    spouse_shares_name=True,
)
_ERITREAN = Names(
    _w(
        "Tesfay Haile Ghebremedhin Tekle Kidane Berhane Mehari Yohannes Weldemariam Habtom "
        "Tesfamariam"
    ),
    _w("Yonas Dawit Samuel Filmon Biniam Tesfalem Merhawi Robel Henok Mussie"),
    _w("Helen Senait Selam Luwam Feven Yordanos Winta Rahel"),
    patronymic=True,
)
_SOMALI = Names(
    _w("Mohamed Hassan Osman Warsame Farah Hussein Abdullahi Yusuf Ahmed Abdi"),
    _w("Abdirahman Abdullahi Mohamed Ahmed Hassan Abdiaziz Mahad Liban Abdikarim Mustafe"),
    _w("Hodan Fadumo Amina Ayaan Sahra Ifrah Nimco Deeqa"),
    patronymic=True,
)


@dataclass(frozen=True)
class Origin:
    names: Names
    male_share: float  # among adults travelling alone
    family_rate: float  # share of travel groups that are families with children
    document: str = "AA9999999"  # passport number pattern: A a letter, 9 a digit


CARIBBEAN = frozenset({"CUB", "HTI"})
ORIGINS: dict[str, Origin] = {
    "CUB": Origin(_CUBAN, 0.55, 0.25),
    "HTI": Origin(_HAITIAN, 0.55, 0.35),
    "IND": Origin(_INDIAN, 0.92, 0.06, "A9999999"),
    "NPL": Origin(_NEPALI, 0.92, 0.04),
    "BGD": Origin(_BANGLADESHI, 0.95, 0.03),
    "CHN": Origin(_CHINESE, 0.70, 0.20, "E99999999"),
    "AFG": Origin(_AFGHAN, 0.80, 0.40),
    "UZB": Origin(_UZBEK, 0.85, 0.05),
    "CMR": Origin(_CAMEROONIAN, 0.80, 0.10),
    "COD": Origin(_CONGOLESE, 0.70, 0.20),
    "ERI": Origin(_ERITREAN, 0.75, 0.05),
    "SOM": Origin(_SOMALI, 0.75, 0.05),
    "GHA": Origin(_GHANAIAN, 0.85, 0.04),
    "SEN": Origin(_SAHEL, 0.90, 0.03),
    "GIN": Origin(_SAHEL, 0.85, 0.05),
    "AGO": Origin(_ANGOLAN, 0.60, 0.35),
}
EXTRACONTINENTAL = frozenset(ORIGINS) - CARIBBEAN
